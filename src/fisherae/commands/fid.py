"""``fid``: the FID of one model's prior samples (the paper's Table 1) in Inception pool3 features
and, on MNIST, in a digit classifier's features (``fisherae.fid``; docs/cli.md)."""

from __future__ import annotations

import sys

from fisherae.commands.common import add_model_arguments, load_config_and_model, load_test_split, write_csv
from fisherae.commands.registry import command
from fisherae.errors import UserError
from fisherae.fid import FID_COLUMNS


@command("fid", "FID of decoded prior samples against the test images (Table 1), per feature space and draw")
def setup_fid(parser):
    add_model_arguments(parser)
    parser.add_argument("--samples", required=True, help="NPZ written by `sample`")
    parser.add_argument("--exact", action="store_true",
                        help="score the samples file's exact draws (those a normalisable prior's exact sampler made "
                             "beside the paper's SVGD draws) instead of its SVGD ones")
    parser.add_argument("--classifier", help="classifier .pt from `train-classifier` (MNIST domain features)")
    parser.add_argument("--out", required=True, help="CSV: " + ", ".join(FID_COLUMNS))
    return run_fid


def run_fid(args) -> None:
    from fisherae.devices import job_device
    from fisherae.fid import feature_extractors, fid_rows, fid_table, unavailable_rows, wants_classifier
    from fisherae.sampling import read_samples

    config, model = load_config_and_model(args)
    z, sampler = read_samples(args.samples, model.spec.latent, exact=args.exact)
    settings = config["evaluation"]["fid"]
    if wants_classifier(settings, args.dataset) and args.classifier is None:
        raise UserError("evaluation.fid.features asks for classifier features on mnist but no --classifier "
                        "was given; train one with `python -m fisherae train-classifier` and pass it")
    with job_device(config) as device:
        extractors, unavailable = feature_extractors(settings, args.dataset, args.classifier, device)
        real = load_test_split(config, args.dataset)
        rows = fid_rows(model.to(device), z, real, extractors, settings["batch_size"], device)
    for features, reason in unavailable.items():
        print(f"fisherae fid: warning: {features} FID unavailable: {reason}", file=sys.stderr)
    rows += unavailable_rows(unavailable, z.shape[1], len(real))
    write_csv(fid_table(rows, args.dataset, args.model, args.seed, sampler), args.out)
