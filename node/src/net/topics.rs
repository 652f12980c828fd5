//! Gossipsub topic names: one topic per namespace and entry kind.
//!
//! ```text
//! plexus/1/<namespace>/<kind>        entries of a known kind
//! plexus/1/<namespace>/other         entries of any other kind
//! plexus/1/<namespace>/fork-proof    fork proofs about authors in the namespace
//! ```
//!
//! A node subscribes to every topic of each namespace it follows, so it receives all kinds; the
//! split lets a future light client follow only some kinds. Namespace and kind names are
//! restricted to `a-z 0-9 . _ -`, so they never contain `/`. Gossipsub lets a remote peer hold at
//! most 100 topic subscriptions, which with [`known_kinds`] allows seven namespaces per node.

use libp2p::gossipsub::IdentTopic;
use plexus_protocol::kind::OTHER_TOPIC_SUFFIX;
use plexus_protocol::Kind;

/// Version segment of every topic; bumped with incompatible entry formats.
pub const TOPIC_VERSION: &str = "1";

/// Every kind with a topic of its own: the kinds with names of their own ([`Kind::NAMED`]).
pub fn known_kinds() -> impl Iterator<Item = &'static str> {
    Kind::NAMED.into_iter().map(Kind::topic_suffix)
}

/// Suffix of the topic for kinds without a topic of their own (see [`known_kinds`]).
pub const OTHER_KINDS: &str = OTHER_TOPIC_SUFFIX;

/// Suffix of the fork-proof topic.
pub const FORK_PROOFS: &str = "fork-proof";

/// What a topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind {
    /// Entries of this namespace whose kind maps to this topic.
    Entries { namespace: String, suffix: String },
    /// Fork proofs about authors in this namespace.
    ForkProofs { namespace: String },
}

/// The topic an entry of `kind` in `namespace` is published on.
pub fn entry_topic(namespace: &str, kind: &str) -> IdentTopic {
    IdentTopic::new(format!(
        "plexus/{TOPIC_VERSION}/{namespace}/{}",
        kind_suffix(kind)
    ))
}

/// The fork-proof topic of a namespace.
pub fn fork_topic(namespace: &str) -> IdentTopic {
    IdentTopic::new(format!("plexus/{TOPIC_VERSION}/{namespace}/{FORK_PROOFS}"))
}

/// Every topic a node following `namespace` subscribes to.
pub fn namespace_topics(namespace: &str) -> Vec<IdentTopic> {
    known_kinds()
        .chain([OTHER_KINDS])
        .map(|kind| IdentTopic::new(format!("plexus/{TOPIC_VERSION}/{namespace}/{kind}")))
        .chain([fork_topic(namespace)])
        .collect()
}

/// The topic suffix for an entry kind named `kind` ([`Kind::topic_suffix`]; an unknown kind,
/// which no node stores, would travel on the shared topic).
pub fn kind_suffix(kind: &str) -> &'static str {
    Kind::parse(kind).map_or(OTHER_KINDS, Kind::topic_suffix)
}

/// Parses a topic name; `None` for anything that is not a Plexus topic.
pub fn parse(topic: &str) -> Option<TopicKind> {
    let mut parts = topic.split('/');
    let (Some("plexus"), Some(TOPIC_VERSION), Some(namespace), Some(suffix), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    plexus_protocol::entry::check_name("namespace", namespace).ok()?;
    if suffix == FORK_PROOFS {
        return Some(TopicKind::ForkProofs {
            namespace: namespace.to_owned(),
        });
    }
    if suffix != OTHER_KINDS && !known_kinds().any(|known| known == suffix) {
        return None;
    }
    Some(TopicKind::Entries {
        namespace: namespace.to_owned(),
        suffix: suffix.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let topic = entry_topic("team", "intent.renew");
        assert_eq!(topic.to_string(), "plexus/1/team/intent.renew");
        assert_eq!(
            parse(&topic.to_string()),
            Some(TopicKind::Entries {
                namespace: "team".into(),
                suffix: "intent.renew".into()
            })
        );
        assert_eq!(
            entry_topic("team", "custom").to_string(),
            "plexus/1/team/other"
        );
        assert_eq!(
            parse("plexus/1/team/fork-proof"),
            Some(TopicKind::ForkProofs {
                namespace: "team".into()
            })
        );
        assert_eq!(parse("plexus/2/team/note"), None);
        assert_eq!(parse("plexus/1/Team/note"), None);
        assert_eq!(parse("plexus/1/team/unknown"), None);
        assert_eq!(parse("plexus/1/team/note/extra"), None);
        assert_eq!(namespace_topics("team").len(), known_kinds().count() + 2);
    }
}
