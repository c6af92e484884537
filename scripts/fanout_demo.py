"""`make fanout-demo`: three sandbox accounts, then `make fanout` on sample_data/accounts.toml, the README's example.

1. start one helcim-sandbox per account of sample_data/accounts.toml, on the
   port its ``url`` names, each with its own token and 40 seeded customers
   (cards, bank accounts, PADs); west-outfitters' injects faults;
2. put each sandbox's token in the variable the account's ``token_env``
   should name — east-grocer's file entry names north's variable instead, so
   east's sandbox refuses it (exit 3), as the example intends;
3. run ``make fanout ACCOUNTS=sample_data/accounts.toml OUT=.run/fanout-demo/out``,
   which prints the per-account table, then stop the sandboxes.

Everything goes under .run/fanout-demo/ (ignored by git); each run starts afresh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from crmsync.jobs.accounts import load_accounts
from helcim_sandbox.launcher import running_sandbox

ACCOUNTS = Path("sample_data/accounts.toml")
RUN_DIR = Path(".run/fanout-demo")
FAULTS = {"west-outfitters": "error500=0.05,drop_after_commit=0.03,timeout=0.02,timeout_s=3,seed=7"}
#: The variable each account's token should be in; the file gets east-grocer's wrong on purpose.
TOKEN_VARIABLES = {
    "north-bakery": "DEMO_TOKEN_NORTH",
    "west-outfitters": "DEMO_TOKEN_WEST",
    "east-grocer": "DEMO_TOKEN_EAST",
}
#: east-grocer's failure is the example's point: the demo succeeds when the fanout ends exactly so.
EXPECTED_EXIT = 3


def main() -> int:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    accounts = load_accounts(ACCOUNTS)
    env = dict(os.environ)
    with ExitStack() as sandboxes:
        for account in accounts.accounts:
            token = f"{account.name}-sandbox-token"
            port = urlsplit(account.url).port or 80
            faults = FAULTS.get(account.name)
            try:
                sandbox = sandboxes.enter_context(
                    running_sandbox(port=port, tokens=(token,), limits="fast", workdir=RUN_DIR / "sandboxes")
                )
            except RuntimeError as error:
                print(f"could not start the sandbox of {account.name} on port {port} (in use?):\n{error}")
                return 2
            sandbox.seed(40, seed=sum(map(ord, account.name)))
            if faults:
                sandbox.configure(faults=faults)
            env[TOKEN_VARIABLES[account.name]] = token
            print(
                f"{account.name}: helcim-sandbox at {sandbox.base_url}"
                + (f", faults {faults}" if faults else "")
            )
        print(
            f"east-grocer's token_env is {accounts.get('east-grocer').token_env}: north's token, refused by east's sandbox"
        )
        command = ["make", "--no-print-directory", "fanout", f"ACCOUNTS={ACCOUNTS}", f"OUT={RUN_DIR / 'out'}"]
        print("$", " ".join(command), flush=True)
        finished = subprocess.run(command, env=env, check=False)
    try:  # make itself exits 2 whatever failed: the fanout's own exit code is in fanout.json
        fanned = json.loads((RUN_DIR / "out" / "fanout.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        print(f"make fanout exited {finished.returncode} without writing {RUN_DIR / 'out' / 'fanout.json'}")
        return finished.returncode or 1
    print(f"sandboxes stopped; the fanout exited {fanned['exit_code']} (make: {finished.returncode})")
    if fanned["exit_code"] != EXPECTED_EXIT:
        return 1
    print(
        f"as the example intends: two accounts done, east-grocer refused (exit 3). Outputs in {RUN_DIR / 'out'}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
