//! A hostile payer and a failed handover, through the `smartmesh` binary on `smartmesh dev`:
//! a proof hand-signed with a nonce above 64 bits must be kept whole (the receiver is paid
//! and the watcher disputes a close claiming less); a payment that could not be written is
//! resent, never paid twice; bad amounts and missing files get clear errors.

mod common;

use alloy::{
    primitives::{B256, U256, utils::parse_ether},
    signers::local::PrivateKeySigner,
};
use common::dev::{Dev, file};
use smartmesh_mesh::{KEY_FILE, load_key};
use smartmesh_protocol::{
    BalanceProof, SignedProof, TokenNetwork, sign_typed, token_network_domain,
};

/// Alice's proof for `transferred` SMT at `nonce`, signed by hand (not by her wallet).
fn hand_signed(
    dev: &Dev,
    alice: &PrivateKeySigner,
    channel: B256,
    nonce: U256,
    transferred: &str,
) -> eyre::Result<String> {
    let chain_id = dev.dev["deployment"]["chainId"]
        .as_u64()
        .unwrap_or_default();
    let network = dev.address("tokenNetwork");
    let proof = BalanceProof {
        channelId: channel,
        nonce,
        transferredAmount: parse_ether(transferred)?,
        ..Default::default()
    };
    Ok(SignedProof {
        chain_id,
        token_network: network,
        signature: sign_typed(alice, &proof, &token_network_domain(chain_id, network)),
        proof,
    }
    .to_text()?)
}

#[tokio::test]
async fn a_nonce_above_64_bits_is_kept_whole_and_wins_the_dispute() -> eyre::Result<()> {
    let dev = Dev::start("wide-nonce")?;
    let brandon = dev.wallet("brandon");
    let channel = dev.alice_and_brandon()?;
    let id = channel.to_string();
    let payment = file(&dev.home, "ten.smr");
    dev.sm(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--amount",
        "10",
        "--out",
        &payment,
    ])?;
    dev.sm(&["receive", "--wallet", "brandon", &payment])?;

    // Alice signs by hand: 100 SMT in total at nonce 2^64, then again at 2^64 + 1.
    let alice = load_key(&dev.home.join("wallets/alice").join(KEY_FILE))?;
    let wide = U256::from(1) << 64;
    for (n, nonce) in [wide, wide + U256::from(1)].into_iter().enumerate() {
        let text = hand_signed(&dev, &alice, channel, nonce, "100")?;
        let path = file(&dev.home, &format!("wide-{n}.smr"));
        std::fs::write(&path, &text)?;
        let received = dev.sm(&["receive", "--wallet", "brandon", &path])?;
        assert!(
            received.starts_with("received: 100 SMT paid in total")
                && received.contains(&format!("(nonce {nonce})")),
            "{received}"
        );
    }
    let status = dev.sm(&["channel", "status", "--wallet", "brandon", "--channel", &id])?;
    assert!(
        status.contains("received 100 SMT"),
        "the journal holds the latest: {status}"
    );
    let synced = dev.sm(&["sync", "--wallet", "brandon"])?;
    assert!(synced.contains("1 receipt(s) stored"), "{synced}");

    // Alice closes claiming the 10 she paid through her wallet: the watcher holds the 100.
    dev.sm(&[
        "channel",
        "close",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--claim",
        "10",
        "--forfeit-deposit",
    ])?;
    let penalty = dev
        .eventually::<TokenNetwork::CloserPenalized>(channel, "the dispute")
        .await?;
    assert_eq!(penalty.provenTransferred, parse_ether("100")?);
    dev.pass_hold_period().await?;
    let (_, brandon_payout, alice_payout) = dev.settled(channel, brandon, "the settle").await?;
    assert_eq!(
        brandon_payout,
        parse_ether("149")?,
        "everything but the watcher's reward"
    );
    assert_eq!(alice_payout, U256::ZERO);
    Ok(())
}

#[tokio::test]
async fn a_failed_handover_is_resent_and_bad_input_is_refused() -> eyre::Result<()> {
    let dev = Dev::start("resend")?;
    let channel = dev.alice_and_brandon()?;
    let id = channel.to_string();

    // The file cannot be written: the payment is signed and journaled; the error says so.
    let unwritable = file(&dev.home, "no-such-dir/payment.smr");
    let error = dev.sm_fails(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--amount",
        "5",
        "--out",
        &unwritable,
    ])?;
    assert!(
        error.contains("cannot write") && error.contains("do not pay again"),
        "{error}"
    );
    assert!(error.contains("next: smartmesh pay --resend"), "{error}");

    let payment = file(&dev.home, "payment.smr");
    let resent = dev.sm(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--resend",
        "--out",
        &payment,
    ])?;
    assert!(
        resent.contains("total 5 SMT, nonce 1"),
        "the same payment: {resent}"
    );
    let printed = dev.sm(&["pay", "--wallet", "alice", "--channel", &id, "--resend"])?;
    assert_eq!(
        printed.trim(),
        std::fs::read_to_string(&payment)?.trim(),
        "resending signs nothing new"
    );

    let first = dev.sm(&["receive", "--wallet", "brandon", &payment])?;
    assert!(first.starts_with("received: 5 SMT"), "{first}");
    let second = dev.sm(&["receive", "--wallet", "brandon", &payment])?;
    assert!(second.starts_with("already received: 5 SMT"), "{second}");
    let status = dev.sm(&["channel", "status", "--wallet", "alice", "--channel", &id])?;
    assert!(status.contains("paid 5 SMT"), "paid once: {status}");

    // Amounts are whole wei or refused; files that are not there are said to be missing.
    for (amount, expected) in [
        ("0.0000000000000000001", "finer than one wei"),
        ("-1", "negative"),
        ("0", "is zero"),
        ("1.2.3", "not an amount"),
        ("", "not an amount"),
    ] {
        let error = dev.sm_fails(&[
            "pay",
            "--wallet",
            "alice",
            "--channel",
            &id,
            "--amount",
            amount,
        ])?;
        assert!(error.contains(expected), "{amount:?}: {error}");
    }
    let missing = file(&dev.home, "missing.smr");
    let error = dev.sm_fails(&["receive", "--wallet", "brandon", &missing])?;
    assert!(
        error.contains(&format!("no such file: {missing}")),
        "{error}"
    );
    let status = dev.sm(&["channel", "status", "--wallet", "alice", "--channel", &id])?;
    assert!(
        status.contains("paid 5 SMT"),
        "nothing refused was paid: {status}"
    );
    Ok(())
}
