"""``steadynet predict``: classify photos or scans of digits."""

from ..errors import ConfigError
from ..pictures import predict_images
from .app import add_common, add_tta, print_json


def add_parser(sub):
    p = sub.add_parser(
        "predict",
        help="classify pictures of digits with a model",
        description="Classify images of single digits. Each image (any size, colour or "
        "background) is converted the way MNIST was made: grey, light ink on "
        "dark, cropped, fitted in 20x20, centred by centre of mass in 28x28. "
        "Needs Pillow (`pip install steadynet[images]`).",
    )
    p.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or a model .npz file (784 inputs)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=3, help="how many of the most probable classes to show (default 3)")
    add_tta(p)
    add_common(p, data=False)
    p.set_defaults(run=run)


def run(args):
    """Classify every image; a bad one gets an error line on stderr where its result would be,
    the others are still printed, and the exit status is 1 if any image failed."""
    import sys

    if args.top < 1:
        raise ConfigError(f"--top must be an integer >= 1, got {args.top}.")
    results = predict_images(args.model, args.images, top=args.top, errors="report", tta=args.tta)
    failed = [r for r in results if "error" in r]
    if args.json:
        print_json(results)
    elif any(r.get("tta") for r in results):
        print("with test-time augmentation: each image averaged with its 4 one-pixel shifts", file=sys.stderr)
    for r in results:
        if "error" in r:
            print(f"steadynet predict: error: {r['error']}", file=sys.stderr, flush=True)
        elif not args.json:
            ranked = ", ".join(f"{t['label']}: {t['probability']:.3f}" for t in r["top"])
            print(f"{r['image']}: {r['label']}  ({ranked})", flush=True)
    return 1 if failed else 0
