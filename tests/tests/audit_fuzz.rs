//! Untrusted files never panic or wedge the verifier: random bytes, and valid exports with
//! random damage, always end in a report, and damage never passes as verified.

use plexus_node::audit::{verify_file, Verdict, VerifyOptions};
use plexus_tests::fixtures::populated_log;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn random_files_are_reported_as_failed(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random.plexus");
        std::fs::write(&path, &bytes).unwrap();
        let report = verify_file(&path, &VerifyOptions::default(), &()).unwrap();
        prop_assert_eq!(report.verdict, Verdict::Failed);
    }
}

#[test]
fn damaged_exports_never_verify() {
    let fixture = populated_log(2, 4);
    let (_, bytes) = fixture.export();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    });
    let damage = (0..bytes.len(), 1u8..=255, 0..bytes.len());
    runner
        .run(&damage, |(position, mask, cut)| {
            // Flip bits at one position and, in half of the cases, also cut the file.
            let mut damaged = bytes.clone();
            damaged[position] ^= mask;
            if cut % 2 == 0 {
                damaged.truncate(cut.max(1));
            }
            let report = fixture.verify_bytes("damaged.plexus", &damaged);
            prop_assert_ne!(report.verdict, Verdict::Verified);
            Ok(())
        })
        .unwrap();
}
