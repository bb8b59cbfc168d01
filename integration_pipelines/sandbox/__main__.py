"""``python -m integration_pipelines.sandbox``: run every partner simulator until Ctrl-C."""

import argparse

from integration_pipelines.sandbox.server import DEFAULT_TENANTS, run_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m integration_pipelines.sandbox",
        description="Run local simulators of the partner APIs (Textkernel, Daxtra, Beeline, SAP Fieldglass).",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=None,
        help="fixed ports: textkernel=N, daxtra=N+1, beeline=N+2, sap_fieldglass=N+3 (default: free ports)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--tenant",
        action="append",
        dest="tenants",
        help=f"tenant to seed (repeatable; default: {', '.join(DEFAULT_TENANTS)})",
    )
    args = parser.parse_args(argv)
    run_forever(args.port_base, host=args.host, tenants=args.tenants or DEFAULT_TENANTS)


if __name__ == "__main__":
    main()
