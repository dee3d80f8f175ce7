"""``genlab compress`` / ``decompress`` / ``rd``: each parses its arguments, makes one call into
``genlab.compression`` (where the checks and the work are) and prints what it returned.
"""

from __future__ import annotations

from .common import out


def cmd_compress(args) -> int:
    from ..compression.files import compress_files

    done = compress_files(args.run, args.images, args.output, quality=args.quality, checkpoint=args.checkpoint)
    out(f"wrote {done.path}: {done.images} image(s), quality {done.quality}, {done.bytes} bytes, {done.bpp:.3f} bpp")
    return 0


def cmd_decompress(args) -> int:
    from ..compression.files import decompress_file

    written, folder = decompress_file(args.file, args.output, run=args.run, checkpoint=args.checkpoint)
    out(f"wrote {written} image(s) to {folder}")
    return 0


def cmd_rd(args) -> int:
    from ..compression.report import rd_report

    report = rd_report(args.run, data=args.data, split=args.split, n=args.n, output=args.output,
                       json_path=args.json, checkpoint=args.checkpoint)
    for line in report.table():
        out(line)
    out("wrote " + ", ".join(map(str, report.written)))
    return 0
