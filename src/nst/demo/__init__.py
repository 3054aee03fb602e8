"""A local web page for stylising (Gradio, the `[demo]` extra): `python -m nst.demo` or `nst-demo`.

`jobs` does the work and `uploads` checks the images, without any web code; `page` is the Gradio
page and `cli` the command line.
"""
