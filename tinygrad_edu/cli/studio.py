"""``tinygrad-edu studio``: train in a local web page and watch it learn (see :mod:`tinygrad_edu.studio`)."""

from __future__ import annotations

import argparse
import errno
import sys
import threading
import webbrowser

from ._common import CLIError, non_negative_int

DEFAULT_PORT = 8765


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "studio", help="train in a local web page and watch it learn",
        description="Start the studio: a local web page that trains a network on the batched engine and shows "
                    "it live (decision boundary, loss and accuracy curves, the network's weights, gradient norms "
                    "per layer). It listens on 127.0.0.1 only and prints a URL with a random token; open that "
                    "URL (it opens in your browser unless --no-browser). Ctrl-C stops it.")
    parser.add_argument("--port", type=non_negative_int, default=None,
                        help=f"port to listen on (default: {DEFAULT_PORT}, or the next free one; 0: any free port)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL but do not open a browser")
    parser.add_argument("--out", default="runs/studio", metavar="DIR",
                        help="where the page's 'save to disk' writes model.json and the pictures (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..studio.server import StudioServer, bind, bind_near

    if args.port is not None and args.port > 65535:
        raise CLIError(f"--port must be at most 65535, got {args.port}")
    try:
        sock = bind_near(DEFAULT_PORT) if args.port is None else bind(args.port)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise CLIError(f"port {args.port} is already in use; choose another --port (0 picks a free one)") from None
        raise CLIError(f"cannot listen on 127.0.0.1:{args.port}: {err.strerror or err}") from None
    server = StudioServer(sock=sock, out_dir=args.out)
    print(f"tinygrad-edu studio: open {server.url}", flush=True)
    print("(listening on 127.0.0.1 only; press Ctrl-C to stop)", file=sys.stderr, flush=True)
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    print("tinygrad-edu studio: stopped", file=sys.stderr, flush=True)
    return 0
