"""The ``gbpfd`` command line.  Other tools drive it, so its output formats
and exit codes are stable (``EXIT_CODES``, printed by ``gbpfd --help``)."""
from __future__ import annotations

import argparse
import os
import sys

from gbpfd import __version__
from gbpfd.errors import GbpfdError, InputError

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED = 130, 141  # as a shell reports SIGINT and SIGPIPE
DESCRIPTION = """\
The device side of an extensible GPU policy plane: verified eBPF policies for
CTA admission, warp throttling and DMA pacing, on a GPU or on the simulated
device.  `gbpfd COMMAND --help` describes each command."""
EXIT_CODES = """\
exit codes:
  0    success (verify: accepted)
  1    rejected by the verifier, a fault under exec, a failed bench case,
       or another gbpfd error (a plane that cannot start)
  2    the input could not be read, parsed or written, or a wrong command line
  130  interrupted (Ctrl-C)
  141  the output was closed first (as in `gbpfd top | head -1`)"""


def _cmd_asm(args) -> int:
    from gbpfd.isa.load import load_program
    program = load_program(args.input, section=args.section)
    if program.maps:
        names = ", ".join(m.name for m in program.maps)
        raise InputError(f"the program declares {len(program.maps)} map{'s' if len(program.maps) > 1 else ''} "
                         f"({names}), which raw bytecode cannot carry, so the .bin would never verify: "
                         "verify, load or disasm the source itself", path=args.input)
    try:
        with open(args.output, "wb") as fh:
            fh.write(program.to_bytes())
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror}", path=args.output) from None
    if program.hook:
        print(f"{args.input}: note: raw bytecode does not carry the .hook declaration; "
              f"pass --hook {program.hook} to verify it", file=sys.stderr)
    return EXIT_OK


def _cmd_disasm(args) -> int:
    from gbpfd.isa.disasm import disassemble
    from gbpfd.isa.load import load_program
    sys.stdout.write(disassemble(load_program(args.input, section=args.section)))
    return EXIT_OK


def _cmd_verify(args) -> int:
    from gbpfd.isa.load import load_program
    from gbpfd.verifier import verify
    program = load_program(args.input, section=args.section)
    verdict = verify(program, args.hook)
    if verdict.accepted:
        print(verdict.log[-1])
        return EXIT_OK
    print("\n".join(verdict.log), file=sys.stderr)
    if args.input.endswith(".bin") and not program.maps and _references_maps(program):
        print(f"{args.input}: note: raw bytecode carries no .map declarations, so its map references "
              "resolve to nothing: verify the .s or .o it was built from", file=sys.stderr)
    return EXIT_REJECTED


def _references_maps(program) -> bool:
    from gbpfd.isa.table import ROWS
    lddw_maps = {(r.opcode, r.rules["src"]) for r in ROWS if r.op in ("lddw_map", "lddw_map_value")}
    return any((i.opcode, i.src) in lddw_maps for i in program.insns)


def _parse_hex(text: str, what: str) -> bytes:
    digits = "".join(text.split())
    if digits.startswith(("0x", "0X")):
        digits = digits[2:]
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise InputError(f"{what} is not hex: {text.strip()[:40]!r}") from None


def _cmd_exec(args) -> int:
    """The bpf_conformance plugin protocol: program hex on stdin, memory hex
    as the argument, r0 in hex on stdout; no verification."""
    from gbpfd.isa.load import program_from_bytes
    from gbpfd.vm.memory import RID_INPUT, address, build_memory
    from gbpfd.vm.status import OK, REASONS
    program = program_from_bytes(_parse_hex(sys.stdin.read(), "program"), path="<stdin>")
    mem = _parse_hex(args.memory, "memory") if args.memory else b""
    if args.vm == "fast":
        from gbpfd.vm.fast import run
    else:
        from gbpfd.vm.reference import run
    memory = build_memory(program.maps, input_mem=mem)
    result = run(program, memory, args=(address(RID_INPUT, 0), len(mem)), fuel=args.fuel)
    if result.status != OK:
        print(f"insn {result.pc}: {REASONS[result.status]}", file=sys.stderr)
        return EXIT_REJECTED
    print(format(result.r0, "x"))
    return EXIT_OK


def _cmd_demo(args) -> int:
    import json

    from gbpfd.bench.progress import fraction_bar
    from gbpfd.demo import DemoConfig, format_report, run_demo
    report = run_demo(DemoConfig(seconds=args.seconds, backend=args.backend),
                      progress=None if args.json else fraction_bar("demo"))
    print(json.dumps(report) if args.json else format_report(report))
    return EXIT_OK


def _cmd_bench(args) -> int:
    from gbpfd.bench.suite import run_from_args
    return run_from_args(args, " ".join(["gbpfd", *sys.argv[1:]]))


def _cmd_top(args) -> int:
    import json
    import time

    from gbpfd.demo.run import DemoConfig, demo_quotas_path
    from gbpfd.plane.plane import Plane
    from gbpfd.top import format_frame, frame
    frames = 1 if args.once else args.frames
    if not args.interval > 0:
        raise ValueError(f"--interval must be > 0 seconds, got {args.interval}")
    if frames is not None and frames < 1:
        raise ValueError(f"--frames must be at least 1, got {frames}")
    if args.attach or args.socket:
        from gbpfd.service.commands import top_attached
        return top_attached(args, frames)
    with Plane(args.backend, quotas=args.quotas or demo_quotas_path()) as plane:
        print(f"gbpfd top: backend {plane.backend_name} ({plane.backend_reason})", file=sys.stderr)
        if plane.simulated and not args.idle:
            from gbpfd.demo.sim_workload import SimDemoWorkload
            SimDemoWorkload.over_all_tenants(plane, DemoConfig(backend="sim"), args.interval * (frames or 10 ** 6))
        n = 0
        while frames is None or n < frames:
            n += 1
            if plane.simulated:
                # the simulated device runs as fast as it can: one interval of device time per frame
                plane.device.run_until(plane.device.now + int(args.interval * 1e9))
            else:
                time.sleep(args.interval)
            f = frame(plane)
            print(json.dumps(f) if args.json else format_frame(f), flush=True)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; a subcommand is registered on the returned
    parser's subparsers (``docs/cli.md`` is generated from it)."""
    parser = argparse.ArgumentParser(prog="gbpfd", description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gbpfd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def program_command(name: str, help_: str):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("input", help="a .s/.asm text, .bin raw bytecode or ELF .o file")
        cmd.add_argument("--section", help="program section of an ELF object with several")
        return cmd

    cmd = program_command("asm", "assemble (or extract) a program into raw bytecode")
    cmd.add_argument("-o", "--output", required=True, help="the .bin file to write")
    cmd.set_defaults(run=_cmd_asm)
    program_command("disasm", "print a program as assembler text").set_defaults(run=_cmd_disasm)
    cmd = program_command("verify", "verify a program for a hook (exit 0 accepted, 1 rejected)")
    cmd.add_argument("--hook", help="hook to verify for (default: the program's own)")
    cmd.set_defaults(run=_cmd_verify)
    cmd = sub.add_parser("exec", help="run bytecode from stdin without verification "
                                      "(bpf_conformance plugin protocol)")
    cmd.add_argument("memory", nargs="?", default="", help="input memory as one hex string")
    cmd.add_argument("--vm", choices=("reference", "fast"), default="reference")
    cmd.add_argument("--fuel", type=int, default=1_000_000, help="instruction limit")
    cmd.set_defaults(run=_cmd_exec)

    cmd = sub.add_parser("demo", help="run the demo: baseline policy, demo quotas, a live swap, the figures")
    cmd.add_argument("--backend", choices=("auto", "cuda", "sim"), default="auto")
    cmd.add_argument("--seconds", type=float, default=1.0, help="device time to run (default 1.0)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    cmd.set_defaults(run=_cmd_demo)

    cmd = sub.add_parser("bench", help="run the benchmark suite in one process: a table, a JSON record, plots")
    cmd.add_argument("names", nargs="*", metavar="NAME", help="cases to run (default: all; --list names them)")
    from gbpfd.bench.options import add_arguments
    add_arguments(cmd)
    cmd.set_defaults(run=_cmd_bench)

    cmd = sub.add_parser("top", help="live per-tenant counters and plane health, one frame per interval")
    cmd.add_argument("--backend", choices=("auto", "cuda", "sim"), default="auto")
    cmd.add_argument("--quotas", help="quota file (default: the shipped demo quotas)")
    cmd.add_argument("--interval", type=float, default=1.0, help="seconds between frames (device time on sim)")
    cmd.add_argument("--frames", type=int, help="stop after this many frames (default: until Ctrl-C)")
    cmd.add_argument("--once", action="store_true", help="print one frame and exit")
    cmd.add_argument("--json", action="store_true", help="one JSON record per frame")
    cmd.add_argument("--idle", action="store_true", help="on the simulated device, run no workload (by default "
                     "every tenant of the quota file gets kernels, and copies where it has a DMA rate)")
    cmd.add_argument("--attach", action="store_true", help="show a running gbpfd serve's plane instead of starting "
                     "one (refreshed in place on a terminal)")
    cmd.add_argument("--socket", help="the daemon's control socket (implies --attach)")
    cmd.set_defaults(run=_cmd_top)

    cmd = sub.add_parser("check", help="the first thing to run on a GPU: staged, bounded checks into check.jsonl")
    from gbpfd.check.command import add_arguments as add_check_arguments, run as run_check
    add_check_arguments(cmd)
    cmd.set_defaults(run=run_check)

    from gbpfd.service.commands import add_parsers as add_service_parsers
    add_service_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as err:  # argparse already printed the usage error (or --help, --version)
            return EXIT_BAD_INPUT if err.code else EXIT_OK
        code = _run(args)
        sys.stdout.flush()  # here, not at exit, where a closed pipe could no longer be caught
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OUTPUT_CLOSED


def _run(args) -> int:
    try:
        return args.run(args)
    except (InputError, ValueError) as err:
        return _fail(args, str(err), EXIT_BAD_INPUT)
    except GbpfdError as err:
        return _fail(args, str(err), EXIT_REJECTED)
    except BrokenPipeError:
        raise
    except OSError as err:  # a file the command had to read or write, named with the system's reason
        where = f"{err.filename}: " if err.filename is not None else ""
        return _fail(args, f"{where}{err.strerror or err}", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _fail(args, message: str, code: int) -> int:
    print(f"gbpfd {args.command}: {message}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what is
    still buffered cannot raise BrokenPipeError again on the way out."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a stream with no descriptor (tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
