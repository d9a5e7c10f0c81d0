"""``table1``: the paper's Table 1 beside our FIDs, saying which are comparable (``fisherae.table1``;
docs/cli.md)."""

from __future__ import annotations

from fisherae.commands.common import read_config, write_csv
from fisherae.commands.registry import command


@command("table1", "Table 1: our FIDs beside the paper's, saying which are comparable")
def setup_table1(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--inputs", nargs="+", required=True, help="CSVs written by `fid`")
    parser.add_argument("--out-csv", required=True, help="tables/table1_fid.csv")
    parser.add_argument("--out-md", required=True, help="tables/table1_fid.md")
    return run_table1


def run_table1(args) -> None:
    from fisherae.checkpoint import atomic_write_text
    from fisherae.table1 import read_fid_csvs, table1, table1_markdown

    config = read_config(args)
    table = table1(read_fid_csvs(args.inputs), config)
    write_csv(table, args.out_csv)
    atomic_write_text(args.out_md, table1_markdown(table))
