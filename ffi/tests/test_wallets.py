"""Two wallets on `smartmesh dev` driven through the generated Python bindings, as an app
drives them: Alice opens a channel through the relayer (no ETH), pays Brandon offline in the
text form, Brandon receives and syncs to the watcher; bad input raises the typed errors with
the CLI's messages and changes nothing; and the two wallets' nodes meet over the peer-to-peer
transport, where a payment reaches Brandon's listener."""

import asyncio
import threading

import pytest

import smartmesh_ffi
from smartmesh_ffi import MeshFfiError


def run(coroutine):
    return asyncio.run(coroutine)


def offline_config():
    """A wallet of chain 31337 with made-up contracts and no service to reach."""
    return smartmesh_ffi.WalletConfig(
        chain_id=31337, token="0x" + "11" * 20, signed_agent="0x" + "22" * 20,
        token_network="0x" + "33" * 20, condition_registry="0x" + "44" * 20, deploy_block=0,
        rpc_url=None, watcher_url=None, relayer_url=None, watch_reward="1", finality=900,
    )


def test_create_import_and_load_a_wallet(tmp_path):
    async def story():
        created = await smartmesh_ffi.create_wallet(str(tmp_path / "new"), offline_config())
        assert created.address().startswith("0x") and len(created.address()) == 42
        with pytest.raises(MeshFfiError.Wallet):
            await smartmesh_ffi.create_wallet(str(tmp_path / "new"), offline_config())
        loaded = await smartmesh_ffi.load_wallet(str(tmp_path / "new"), offline_config())
        assert loaded.address() == created.address()
        # Anvil's first key: its address is known.
        key = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        imported = await smartmesh_ffi.import_wallet(str(tmp_path / "old"), key, offline_config())
        assert imported.address().lower() == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        with pytest.raises(MeshFfiError.Wallet) as not_key:
            await smartmesh_ffi.import_wallet(str(tmp_path / "bad"), "0x12", offline_config())
        assert "not a hex private key" in str(not_key.value)
        assert await imported.channels() == []
        # Offline: the services are not configured, and the error says which.
        with pytest.raises(MeshFfiError.Offline) as offline:
            await imported.sync()
        assert "watcher" in str(offline.value)

    run(story())


async def open_alice_to_brandon(dev):
    alice = await smartmesh_ffi.load_wallet(dev.wallet_dir("alice"), dev.config())
    brandon = await smartmesh_ffi.load_wallet(dev.wallet_dir("brandon"), dev.config())
    opened = await alice.open_channel(brandon.address(), 600)
    channel = opened.channel_id
    await alice.deposit(channel, "100")
    await brandon.refresh_channel(channel)
    return alice, brandon, channel, opened


def test_open_through_the_relayer_pay_offline_receive_and_sync(dev):
    async def story():
        alice, brandon, channel, opened = await open_alice_to_brandon(dev)
        assert opened.operation.tx_hash.startswith("0x")
        assert float(opened.operation.fee) > 0, "the relayer is paid in SMT"
        balances = await alice.balances()
        assert balances.eth == "0", "Alice holds no ETH: the relayer paid the gas"

        info = await alice.channel(channel)
        assert (info.state, info.my_deposit, info.can_send) == ("open", "100", "100")

        # Offline: the payment is a text for a QR code, taken by Brandon's wallet.
        text = await alice.pay(channel, "12.5")
        assert text.startswith("smr1")
        got = await brandon.receive(text)
        assert (got.kind, got.channel_id, got.paid_in_total) == ("payment", channel, "12.5")
        assert not got.already_held
        again = await brandon.receive(text)
        assert again.already_held, "a retried handover changes nothing"
        assert (await brandon.channel(channel)).received == "12.5"
        assert (await alice.channel(channel)).can_send == "87.5"

        synced = await brandon.sync()
        assert (synced.stored, synced.rejected) == (1, [])
        assert (await brandon.sync()).stored == 0, "nothing new to hand over"
        return [w.address() for w in (alice, brandon)]

    alice, brandon = run(story())
    assert alice != brandon


def test_bad_input_raises_typed_errors_with_the_clis_messages(dev):
    async def story():
        alice, brandon, channel, _ = await open_alice_to_brandon(dev)
        with pytest.raises(MeshFfiError.OverCapacity) as over:
            await alice.pay(channel, "1000")
        assert "exceed this wallet's capacity" in str(over.value)
        with pytest.raises(MeshFfiError.InvalidArgument) as bad:
            await alice.pay(channel, "1.2.3")
        assert 'amount "1.2.3" is not an amount of SMT' in str(bad.value)
        with pytest.raises(MeshFfiError.InvalidArgument) as zero:
            await alice.pay(channel, "0")
        assert "is zero" in str(zero.value)
        with pytest.raises(MeshFfiError.InvalidArgument) as not_id:
            await alice.pay("0x12", "1")
        assert "channel_id" in str(not_id.value)
        with pytest.raises(MeshFfiError.NoChannel):
            await alice.pay("0x" + "ab" * 32, "1")
        with pytest.raises(MeshFfiError.Rejected):
            await brandon.receive("smr1AAAA")
        with pytest.raises(MeshFfiError.Wallet):
            await smartmesh_ffi.load_wallet(str(dev.home / "nobody"), dev.config())
        config = dev.config()
        config.token = "not an address"
        with pytest.raises(MeshFfiError.InvalidArgument) as field:
            await smartmesh_ffi.load_wallet(dev.wallet_dir("alice"), config)
        assert "token" in str(field.value)
        # Nothing moved.
        assert (await alice.channel(channel)).can_send == "100"

    run(story())


class Heard(smartmesh_ffi.NodeListener):
    """Keeps what a node reports, from the library's threads."""

    def __init__(self):
        self.updates = []
        self.lock = threading.Lock()
        self.stopped = []

    def on_update(self, update):
        with self.lock:
            self.updates.append(update)

    def on_stopped(self, error):
        self.stopped.append(error)

    def first(self, kind):
        with self.lock:
            return next((u for u in self.updates if isinstance(u, kind)), None)


async def eventually(what, check, seconds=30):
    for _ in range(seconds * 10):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_nodes_meet_and_a_payment_reaches_the_listener(dev):
    async def story():
        alice, brandon, channel, _ = await open_alice_to_brandon(dev)
        options = smartmesh_ffi.NodeOptions(
            listen=["/ip4/127.0.0.1/tcp/0"], dial=[], mdns=False,
            sync_interval_secs=3600, received_dir=None,
        )
        heard_by_alice, heard_by_brandon = Heard(), Heard()
        alice_node = await alice.start_node(options, heard_by_alice)
        brandon_node = await brandon.start_node(options, heard_by_brandon)
        try:
            listening = await eventually(
                "Brandon's node to listen",
                lambda: heard_by_brandon.first(smartmesh_ffi.NodeUpdate.LISTENING),
            )
            alice_node.dial(f"{listening.address}/p2p/{brandon_node.peer_id()}")
            met = await eventually(
                "the nodes to meet", lambda: heard_by_alice.first(smartmesh_ffi.NodeUpdate.MET)
            )
            assert met.peer == brandon.address()
            started = await alice_node.pay(brandon.address(), "2", "0")
            assert (started.condition_id, started.mediators) == (None, []), "a direct payment"
            received = await eventually(
                "Brandon's listener to hear the payment",
                lambda: heard_by_brandon.first(smartmesh_ffi.NodeUpdate.RECEIVED),
            )
            assert (received.peer, received.kind) == (alice.address(), "payment")
            assert (await brandon.channel(channel)).received == "2"
        finally:
            await alice_node.stop()
            await brandon_node.stop()
        await brandon_node.stop()  # stopping twice does nothing
        assert heard_by_alice.stopped == [] and heard_by_brandon.stopped == []

    run(story())
