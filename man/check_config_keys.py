#!/usr/bin/env python3
"""check_config_keys.py - the keys estate-gw.conf(5) documents are exactly
the keys the config loader accepts (estate-gw --print-config-keys).

Usage: check_config_keys.py ESTATE_GW BUILT_MAN_PAGE"""
import re
import subprocess
import sys


def loader_keys(exe):
    out = subprocess.run([exe, "--print-config-keys"], check=True, capture_output=True,
                         text=True).stdout
    return [line.split("\t")[0] for line in out.splitlines() if line]


def page_keys(path):
    """Bold terms of the KEYS section of the roff page."""
    text = open(path, encoding="utf-8").read()
    start = text.find('.SH KEYS')
    end = text.find('.SH', start + 1)
    if start < 0:
        sys.exit(f"{path}: no KEYS section")
    section = text[start:end if end > 0 else len(text)]
    keys = re.findall(r'^\\fB(.+?)\\fR\s*$', section, re.M)
    return [k.replace("\\&", "").replace("\\-", "-").replace("\\_", "_") for k in keys]


def main():
    exe, page = sys.argv[1], sys.argv[2]
    want, got = loader_keys(exe), page_keys(page)
    if len(want) < 50:
        sys.exit(f"the loader lists only {len(want)} keys")
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    for k in missing:
        print(f"not in {page}: {k}")
    for k in extra:
        print(f"in {page} but not accepted by the loader: {k}")
    if missing or extra or len(got) != len(want):
        sys.exit(1)
    print(f"{len(want)} keys: the manual and the loader agree")


if __name__ == "__main__":
    main()
