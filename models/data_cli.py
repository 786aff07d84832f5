"""``autous data build-cuv``: assemble the CUV data set from its public sources (imports lazily)."""
from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this package's subcommands to the root parser."""
    data = sub.add_parser("data", help="data-set tools (build-cuv)",
                          description="Data-set tools.")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    b = data_sub.add_parser(
        "build-cuv", help="build the CUV data set from BUV, UIdataGB, POCUS and Butterfly",
        description="Map the four public sources, in their published layouts, to CUV's five classes "
                    "(breast_benign, breast_malignant, gallbladder_disease, covid19, bacterial_pneumonia) and "
                    "write OUT/<class>/<source>_<name> (symlinks by default) with OUT/manifest.csv "
                    "(file,label,patient,source,original,split) and OUT/skipped.csv. Any source may be omitted.")
    b.add_argument("--buv", metavar="DIR", help="'Miccai 2022 BUV Dataset' (rawframes/benign|malignant/<video>/)")
    b.add_argument("--uidatagb", metavar="DIR", help="UIdataGB image folders (1Gallstones ... 9Various causes ...)")
    b.add_argument("--pocus", metavar="DIR", help="covid19_ultrasound repository (data/pocus_videos/convex|linear)")
    b.add_argument("--butterfly", metavar="DIR", help="the Butterfly gallery videos (unzipped)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder (must not hold a manifest.csv)")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--link", dest="copy", action="store_false", help="symlink the clips (default)")
    mode.add_argument("--copy", dest="copy", action="store_true", help="copy the clips")
    b.set_defaults(handler=build_cuv_command, copy=False)


def build_cuv_command(args: argparse.Namespace) -> int:
    """Build CUV and print per-class, per-source counts."""
    from models.classes import CUV_CLASSES, class_info
    from models.cuv import SOURCES, build_cuv

    result = build_cuv(args.out, buv=args.buv, uidatagb=args.uidatagb, pocus=args.pocus,
                       butterfly=args.butterfly, copy=args.copy)
    used = [s for s in SOURCES if any(result.counts[c].get(s) for c in CUV_CLASSES)]
    print(f"{'class':<22}" + "".join(f"{s:>11}" for s in used) + f"{'total':>9}")
    for label in CUV_CLASSES:
        per = result.counts[label]
        print(f"{label:<22}" + "".join(f"{per.get(s, 0):>11}" for s in used) + f"{sum(per.values()):>9}"
              + ("" if per else f"   (no source given for {class_info(label).name.lower()})"))
    total = sum(sum(c.values()) for c in result.counts.values())
    print(f"{total} clips -> {result.manifest}; {len(result.skipped)} items skipped "
          f"(see {result.manifest.parent / 'skipped.csv'})")
    return 0
