"""A2A agent cards read by the official A2A SDK (a2a-sdk): its card resolver fetches and
parses the node's well-known card, every field A2A requires is filled, the fields round-trip,
and the Plexus entry inside verifies as the author's signature without trusting the node."""

from __future__ import annotations

import hashlib

import httpx
from a2a.client.card_resolver import A2ACardResolver, parse_agent_card
from a2a.utils.proto_utils import validate_proto_required_fields
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.json_format import MessageToDict

from conftest import Node, wait_for
from plexus_client import Capability, Skill

SIGNED_ENTRY = "urn:plexus:a2a:signed-entry:v1"
ENTRY_DOMAIN_TAG = b"plexus/entry/v1\x00"

CARD = Capability(
    name="reviewer",
    description="Reviews Rust pull requests",
    version="1.4",
    url="https://reviewer.example/a2a",
    ttl_ms=600_000,
    skills=[
        Skill(id="review", name="Code review", description="Finds bugs", tags=["code", "rust"]),
        Skill(id="triage", name="Triage"),
    ],
)


async def test_the_a2a_sdk_resolves_the_well_known_card(node: Node) -> None:
    with node.client() as client:
        client.announce(CARD)
    # No token: A2A discovery is public.
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, node.api_url).get_agent_card()
    validate_proto_required_fields(card)
    assert (card.name, card.description, card.version) == (
        "reviewer",
        "Reviews Rust pull requests",
        "1.4",
    )
    assert [(i.url, i.protocol_binding) for i in card.supported_interfaces] == [
        ("https://reviewer.example/a2a", "JSONRPC"),
        (f"plexus://team/{node.agent_id}", "PLEXUS"),
    ]
    assert [(s.id, s.name, s.description, list(s.tags)) for s in card.skills] == [
        ("review", "Code review", "Finds bugs", ["code", "rust"]),
        ("triage", "Triage", "Triage", ["triage"]),
    ]
    (extension,) = card.capabilities.extensions
    assert extension.uri == SIGNED_ENTRY
    params = MessageToDict(extension.params)
    assert params["author"] == node.agent_id
    verify_envelope(params)


def test_the_namespace_lists_other_agents_cards_with_their_signatures(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    with alice.client() as first, bob.client() as second:
        announced = first.announce(CARD).entry
        listed = wait_for(
            lambda: second.a2a_cards(tag="rust")["cards"] or None, "alice's card on bob's node"
        )
    (raw,) = listed
    card = parse_agent_card(dict(raw))
    validate_proto_required_fields(card)
    assert card.name == "reviewer"
    params = MessageToDict(card.capabilities.extensions[0].params)
    assert params["entryId"] == announced.entry_id
    assert params["author"] == alice.agent_id
    verify_envelope(params)


def verify_envelope(params: dict[str, object]) -> None:
    """Checks the card's entry as any reader can (docs/PROTOCOL.md sections 3 and 9.5): the
    signed header hashes to the entry id, and the author's key signed it."""
    envelope = bytes.fromhex(str(params["envelope"]))
    signature = bytes.fromhex(str(params["signature"]))
    # envelope = 0x82, signed header (0x8a ... 0x58 0x40 signature), body.
    end = envelope.index(b"\x58\x40" + signature) + 2 + len(signature)
    signed_header = envelope[1:end]
    assert hashlib.sha256(signed_header).hexdigest() == params["entryId"]
    unsigned = b"\x89" + signed_header[1 : -2 - len(signature)]
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(params["author"])))
    key.verify(signature, ENTRY_DOMAIN_TAG + unsigned)  # raises InvalidSignature if forged
