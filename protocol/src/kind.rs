//! The entry kinds: the one closed list of names the protocol knows, and what each one means.
//!
//! An entry's header carries its kind as text (`docs/PROTOCOL.md` §3.1); [`Kind`] is what that
//! text means to the protocol. The set is closed and names are matched byte for byte:
//!
//! | name                | [`Kind`]                  | layer        | topic suffix        |
//! |---------------------|---------------------------|--------------|---------------------|
//! | `capability`        | `Capability`              | coordination | the name            |
//! | `capability.revoke` | `CapabilityRevoke`        | coordination | the name            |
//! | `intent`            | `Intent`                  | coordination | the name            |
//! | `intent.renew`      | `IntentRenew`             | coordination | the name            |
//! | `intent.release`    | `IntentRelease`           | coordination | the name            |
//! | `task`              | `Task`                    | coordination | the name            |
//! | `constraint`        | `Constraint`              | coordination | the name            |
//! | `pattern`           | `Pattern`                 | coordination | the name            |
//! | `policy`            | `Policy`                  | governance   | the name            |
//! | `x-` + anything     | `Application`             | application  | `other`             |
//!
//! Every other name (`intnet`, `Intent`, `intent `) is refused with [`UnknownKind`], so a typo
//! is an error rather than silent data. Application kinds keep their full name in the header;
//! [`Kind::Application`] stands for all of them, which is why it has no name of its own
//! ([`Kind::as_str`] gives the pattern `x-*`, as policies write it).

use std::fmt;
use std::str::FromStr;

/// The prefix of application kinds, which Plexus stores and gossips but does not interpret.
pub const APPLICATION_KIND_PREFIX: &str = "x-";

/// Suffix of the gossip topic shared by every kind without a topic of its own.
pub const OTHER_TOPIC_SUFFIX: &str = "other";

/// What an entry's kind means to the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `capability`: the author's card, with a TTL.
    Capability,
    /// `capability.revoke`: the author withdraws its card.
    CapabilityRevoke,
    /// `intent`: a claim on a named resource for a lease.
    Intent,
    /// `intent.renew`: extends one of the author's claims.
    IntentRenew,
    /// `intent.release`: ends one of the author's claims.
    IntentRelease,
    /// `task`: a task-state update.
    Task,
    /// `constraint`: a scoped rule on resources.
    Constraint,
    /// `pattern`: learned knowledge shared with others.
    Pattern,
    /// `policy`: a governed namespace's rules, signed by an admin.
    Policy,
    /// Any kind named `x-...`: stored and gossiped, never interpreted.
    Application,
}

/// A kind name the protocol does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown kind {name:?}: use one of {known}, or an application kind starting with \"x-\" \
     (kind names are matched exactly, in lower case)",
    known = Kind::NAMED.map(Kind::as_str).join(", ")
)]
pub struct UnknownKind {
    /// The name as it was given.
    pub name: String,
}

impl Kind {
    /// Every kind with a name of its own, in the order of `docs/PROTOCOL.md`'s tables: the
    /// coordination kinds, then `policy`.
    pub const NAMED: [Kind; 9] = [
        Kind::Capability,
        Kind::CapabilityRevoke,
        Kind::Intent,
        Kind::IntentRenew,
        Kind::IntentRelease,
        Kind::Task,
        Kind::Constraint,
        Kind::Pattern,
        Kind::Policy,
    ];

    /// What the protocol makes of the kind name `name`.
    pub fn parse(name: &str) -> Result<Kind, UnknownKind> {
        let kind = match name {
            "capability" => Kind::Capability,
            "capability.revoke" => Kind::CapabilityRevoke,
            "intent" => Kind::Intent,
            "intent.renew" => Kind::IntentRenew,
            "intent.release" => Kind::IntentRelease,
            "task" => Kind::Task,
            "constraint" => Kind::Constraint,
            "pattern" => Kind::Pattern,
            "policy" => Kind::Policy,
            application if application.starts_with(APPLICATION_KIND_PREFIX) => Kind::Application,
            unknown => {
                return Err(UnknownKind {
                    name: unknown.to_owned(),
                })
            }
        };
        Ok(kind)
    }

    /// The kind's wire name; `x-*` (the policy pattern for all of them) for
    /// [`Kind::Application`], whose entries carry their own names.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Capability => "capability",
            Kind::CapabilityRevoke => "capability.revoke",
            Kind::Intent => "intent",
            Kind::IntentRenew => "intent.renew",
            Kind::IntentRelease => "intent.release",
            Kind::Task => "task",
            Kind::Constraint => "constraint",
            Kind::Pattern => "pattern",
            Kind::Policy => "policy",
            Kind::Application => "x-*",
        }
    }

    /// The last segment of the gossip topic its entries travel on (`docs/PROTOCOL.md` §8.1):
    /// the name itself for a named kind, `other` for application kinds.
    pub fn topic_suffix(self) -> &'static str {
        match self {
            Kind::Application => OTHER_TOPIC_SUFFIX,
            named => named.as_str(),
        }
    }

    /// Whether the coordination view interprets the kind (`docs/PROTOCOL.md` §9).
    pub fn is_coordination(self) -> bool {
        !matches!(self, Kind::Policy | Kind::Application)
    }

    /// Whether the kind belongs to governance (§10): only admins may post it, and `*` in a
    /// role does not cover it.
    pub fn is_governance(self) -> bool {
        self == Kind::Policy
    }

    /// Whether the kind is a claim, renewal or release, which the clock-skew window applies to
    /// in every namespace (§9.4).
    pub fn is_claim(self) -> bool {
        matches!(self, Kind::Intent | Kind::IntentRenew | Kind::IntentRelease)
    }

    /// Whether a governance rule reads this kind's body (lease and TTL caps, claim counts,
    /// the policy itself), so the body must be parsed before the decision.
    pub fn is_read_by_policy(self) -> bool {
        matches!(
            self,
            Kind::Intent
                | Kind::IntentRenew
                | Kind::IntentRelease
                | Kind::Capability
                | Kind::Constraint
                | Kind::Policy
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<Kind, UnknownKind> {
        Kind::parse(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_kind_round_trips_through_its_name() {
        for kind in Kind::NAMED {
            assert_eq!(Kind::parse(kind.as_str()), Ok(kind));
            assert_eq!(kind.to_string().parse::<Kind>(), Ok(kind));
            assert_eq!(kind.topic_suffix(), kind.as_str());
        }
        let names: std::collections::BTreeSet<&str> = Kind::NAMED.map(Kind::as_str).into();
        assert_eq!(names.len(), Kind::NAMED.len(), "two kinds share a name");
    }

    #[test]
    fn application_kinds_are_one_kind_on_the_shared_topic() {
        for name in ["x-note", "x-", "x-a.b_c-d"] {
            assert_eq!(Kind::parse(name), Ok(Kind::Application));
        }
        assert_eq!(Kind::Application.topic_suffix(), "other");
        assert!(!Kind::Application.is_coordination());
        assert!(!Kind::Application.is_governance());
    }

    #[test]
    fn an_unknown_kind_is_refused_naming_it_and_every_known_kind() {
        for name in ["intnet", "Intent", "intent ", "", "policies", "x", "X-note"] {
            let error = Kind::parse(name).unwrap_err();
            assert_eq!(error.name, name);
            let message = error.to_string();
            assert!(message.contains(&format!("{name:?}")), "{message}");
            for known in Kind::NAMED {
                assert!(message.contains(known.as_str()), "{message} lacks {known}");
            }
            assert!(message.contains("\"x-\""), "{message}");
        }
    }

    #[test]
    fn layers_split_the_named_kinds() {
        let coordination: Vec<Kind> = Kind::NAMED
            .into_iter()
            .filter(|kind| kind.is_coordination())
            .collect();
        assert_eq!(coordination.len(), 8);
        assert!(Kind::Policy.is_governance() && !Kind::Policy.is_coordination());
        let claims: Vec<&str> = Kind::NAMED
            .into_iter()
            .filter(|kind| kind.is_claim())
            .map(Kind::as_str)
            .collect();
        assert_eq!(claims, ["intent", "intent.renew", "intent.release"]);
    }
}
