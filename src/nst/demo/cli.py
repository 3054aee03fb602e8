"""`nst-demo` / `python -m nst.demo`: serve the page on this machine and print its URL."""

import argparse
from collections.abc import Sequence
from pathlib import Path

from nst import zoo
from nst.demo.jobs import DemoSettings
from nst.demo.uploads import DEFAULT_MAX_SIDE
from nst.errors import UserError, exit_on_user_error


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(
        prog="nst-demo", description="A local web page for stylising photos with nst."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or next free)")
    parser.add_argument(
        "--share", action="store_true", help="also open a public Gradio share link (off by default)"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: auto)")
    parser.add_argument(
        "--max-side",
        type=int,
        default=DEFAULT_MAX_SIDE,
        help=f"refuse uploads over this many px on the long side (default: {DEFAULT_MAX_SIDE})",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=50, help="refuse larger upload files (default: 50)"
    )
    parser.add_argument(
        "--vgg-weights",
        default="auto",
        help="VGG weights for basic/improved: auto | caffe | torchvision | PATH (default: auto)",
    )
    parser.add_argument(
        "--zoo",
        type=Path,
        default=None,
        help="a folder with a registry.json of models to offer instead of the installed zoo",
    )
    return parser.parse_args(argv)


def use_zoo_folder(folder: Path) -> None:
    """Offer the models registered in `folder` instead of the installed zoo."""
    if not (folder / "registry.json").is_file():
        raise UserError(f"{folder} has no registry.json; pass a folder made by nst.zoo.add_model.")
    zoo.FOLDER, zoo.REGISTRY = folder, folder / "registry.json"


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    """Build the page, serve it until Ctrl-C, and print where it is."""
    arguments = parse_arguments(argv)
    if arguments.zoo is not None:
        use_zoo_folder(arguments.zoo)
    settings = DemoSettings(
        max_side=arguments.max_side, device=arguments.device, vgg_weights=arguments.vgg_weights
    )
    from nst.demo.page import THEME, build_page

    page = build_page(settings).queue()
    _, local_url, share_url = page.launch(
        server_name=arguments.host,
        server_port=arguments.port,
        share=arguments.share,
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=int(arguments.max_upload_mb * 1024 * 1024),
        theme=THEME,
        ssr_mode=False,
        footer_links=[],
    )
    print(f"nst demo: {local_url}", flush=True)
    if share_url:
        print(f"public share link: {share_url}", flush=True)
    try:
        page.block_thread()
    finally:
        page.close()
