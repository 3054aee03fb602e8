"""Stylise an image from the command line.

    python stylize.py method=basic input=photo.jpg style=painting.jpg [output=out.png] [size=512]
        [device=auto|cpu|cuda] [preserve_color=none|luminance|histogram] [method.iterations=N]
    python stylize.py input=photo.jpg style=[a.jpg,b.jpg] style_weights=[0.3,0.7]
    python stylize.py method=improved input=photo.jpg style=painting.jpg size=1024 method.scales=3
    python stylize.py model=wave input=photo.jpg|FOLDER|clip.mp4   (zoo models: model=list)
    python stylize.py ckpt=last.ckpt input=photo.jpg|FOLDER [output=PATH] [size=N] [device=…]
        [batch_size=8] [precision=fp32|bf16|fp16] [strength=0.0…1.0] [preserve_color=luminance]
    python stylize.py ckpt=last.ckpt input=clip.mp4 [output=out.mp4] [size=N] [batch_size=8]
        [video.crf=18] [video.preset=veryfast]
    python stylize.py ckpt=last.ckpt|model=wave export=onnx|torchscript [output=PATH]
    python stylize.py ckpt=ARB.ckpt input=photo.jpg|FOLDER style=painting.jpg [strength=0.0…1.0]
    python stylize.py ckpt=ARB.ckpt input=photo.jpg style=[a.jpg,b.jpg] style_weights=[0.3,0.7]

Every failure the user can fix ends in one sentence on stderr and exit code 2, with no output
file written and the inputs untouched.

The program lives in `nst.commands.stylize` (installed as `nst-stylize`); this file runs it.
"""

from nst.commands.stylize import cli

if __name__ == "__main__":
    cli()
