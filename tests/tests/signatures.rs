//! One Ed25519 validity rule end to end: entries by a key with a torsion component, valid
//! under docs/PROTOCOL.md §1, are stored by an honest node from gossip, and that node's own
//! export then passes its own audit (single checks live, batch checks in the audit).

use std::time::Duration;

use plexus_crypto::crafted::CraftedSigner;
use plexus_node::audit::{self, Verdict};
use plexus_node::net::topics;
use plexus_protocol::value::json_text_to_canonical;
use plexus_protocol::{Entry, FeedKey};
use plexus_tests::cluster::{
    connect, publish_note, shutdown, spawn_node, test_net_config, wait_converged, wait_for,
    NAMESPACE,
};
use plexus_tests::fixtures::verify_path;
use plexus_tests::vectors::signatures::crafted_entry;

const CONVERGE: Duration = Duration::from_secs(90);

/// More than two audit batches (256 signatures each), so the torsioned feed spans at least
/// three batch equations.
const TORSIONED_ENTRIES: u64 = 520;

const OWN_ENTRIES: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_by_a_torsioned_key_pass_gossip_and_the_nodes_own_audit() {
    let honest = spawn_node(test_net_config()).await;
    let relay = spawn_node(test_net_config()).await;
    connect(&relay, &honest).await;
    for n in 0..OWN_ENTRIES {
        publish_note(&honest, n).await;
    }
    wait_converged(&[&honest, &relay], 1, OWN_ENTRIES, CONVERGE).await;

    // A = [a]B + T with T of order 8: a valid key under §1 (not of small order). Each entry's
    // challenge k is a multiple of 8, so even a cofactorless single check accepts it: the
    // entries are valid under every reading, and only a verifier that disagrees with itself
    // between single and batch checks can refuse them.
    let signer = CraftedSigner::new(&[0x44; 32], 1);
    let author = signer.agent_id().unwrap();
    let topic = topics::entry_topic(NAMESPACE, "x-note");
    let mut prev = None;
    for seq in 1..=TORSIONED_ENTRIES {
        let body = json_text_to_canonical(&format!("{{\"torsioned\": {seq}}}")).unwrap();
        let envelope = crafted_entry(&signer, NAMESPACE, seq, prev, "x-note", &body, |k| {
            k % 8 == 0
        });
        let entry = Entry::decode(&envelope).unwrap();
        assert!(entry.verify_signature(), "seq {seq} must verify singly");
        prev = Some(entry.id());
        relay
            .node
            .net()
            .publish(topic.clone(), envelope)
            .await
            .unwrap();
    }
    let feed = FeedKey {
        namespace: NAMESPACE.into(),
        author,
    };
    wait_for(
        "the honest node to store every torsioned entry",
        CONVERGE,
        &[&honest],
        || async { honest.node.log().head(&feed).unwrap().map(|head| head.seq) },
        |seq| *seq == Some(TORSIONED_ENTRIES),
    )
    .await;
    assert!(
        honest.node.log().rejections().unwrap().is_empty(),
        "nothing may be rejected"
    );

    let path = honest.dir.path().join("own.plexus");
    audit::export_to_file(honest.node.log(), &honest.keypair, &path, 1_767_225_600_000).unwrap();
    let report = verify_path(&path);
    assert_eq!(report.verdict, Verdict::Verified, "{:#?}", report.findings);
    assert_eq!(report.entries, OWN_ENTRIES + TORSIONED_ENTRIES);
    assert_eq!(report.signatures_checked, OWN_ENTRIES + TORSIONED_ENTRIES);
    shutdown(vec![honest, relay]).await;
}
