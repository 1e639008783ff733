"""What the Python tests of the foreign interface share: the generated bindings on the path,
and a `smartmesh dev` stack (anvil, the contracts, the watcher, the relayer) for each test."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINDINGS = pathlib.Path(os.environ.get("SMARTMESH_BINDINGS", ROOT / "target/bindings/python"))
SMARTMESH = pathlib.Path(os.environ.get("SMARTMESH_BIN", ROOT / "target/debug/smartmesh"))
ANVIL = ROOT / "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

sys.path.insert(0, str(BINDINGS))


class Dev:
    """A running `smartmesh dev`, its dev.json and its demo wallets' directories."""

    def __init__(self, home: pathlib.Path, process: subprocess.Popen, dev: dict):
        self.home = home
        self.process = process
        self.dev = dev

    def wallet_dir(self, name: str) -> str:
        return str(self.home / "wallets" / name)

    def config(self):
        import smartmesh_ffi

        deployment = self.dev["deployment"]
        return smartmesh_ffi.WalletConfig(
            chain_id=deployment["chainId"],
            token=deployment["token"],
            signed_agent=deployment["signedAgent"],
            token_network=deployment["tokenNetwork"],
            condition_registry=deployment["conditionRegistry"],
            deploy_block=0,
            rpc_url=self.dev["rpcUrl"],
            watcher_url=self.dev["watcherUrl"],
            relayer_url=self.dev["relayerUrl"],
            watch_reward="1",
            finality=0,
        )


@pytest.fixture
def dev():
    home = pathlib.Path(tempfile.mkdtemp(prefix="smartmesh-ffi-"))
    process = subprocess.Popen(
        [
            str(SMARTMESH), "dev", "--port", "0", "--watcher-port", "0", "--relayer-port", "0",
            "--home", str(home), "--anvil", str(ANVIL),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                started = json.loads((home / "dev.json").read_text())
                break
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            if process.poll() is not None:
                raise RuntimeError(f"smartmesh dev exited: {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("smartmesh dev did not start")
            time.sleep(0.1)
        yield Dev(home, process, started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)
