// The shapes of the node's API documents that the page reads (see GET /v1/openapi.json).

export interface Skill {
  id: string;
  name: string;
  description?: string;
  tags?: string[];
}

export interface Card {
  author: string;
  name: string;
  description: string;
  version: string;
  url: string | null;
  skills: Skill[];
  published_ms: number;
  expires_ms: number;
  entry_id: string;
}

export interface Claim {
  claim_id: string;
  author: string;
  resource: string;
  action: string;
  note: string;
  priority: number;
  claimed_ms: number;
  expires_ms: number;
  standing: string;
  position?: number;
  until_ms?: number;
  /** This node received the claim (or its author's renewal or release) late: PROTOCOL.md §9.4. */
  late?: boolean;
  /** With `late`: how long after its timestamp the late entry reached this node. */
  late_after_ms?: number;
}

export interface Lease {
  resource: string;
  max_holders: number;
  holders: Claim[];
  waiting: Claim[];
  excluded: Claim[];
}

export interface TaskHistoryItem {
  entry_id: string;
  author: string;
  timestamp_ms: number;
  state: string;
  message: string;
  references: string[];
  rejected: string | null;
}

export interface Task {
  task_id: string;
  context_id: string;
  state: string;
  message: string;
  created_by: string;
  updated_by: string;
  created_ms: number;
  updated_ms: number;
  history: TaskHistoryItem[];
}

export interface Rejection {
  counter: number;
  time_ms: number;
  reason: string;
  detail: string;
  input_hash: string;
  input_len: number;
  source: string;
  rule: string | null;
  policy_version: number | null;
}

export interface Peer {
  peer_id: string;
  agent_id: string | null;
  score: number | null;
  dialed: boolean;
  mesh: string[];
}

export interface NodeInfo {
  agent_id: string;
  peer_id: string;
  version: string;
  namespace: string;
  namespaces: string[];
  listen_addrs: string[];
  entries_in_view: number;
}

export interface FeedStatus {
  namespace: string;
  author: string;
  seq: number;
  id: string;
}

export interface NodeStatus {
  agent_id: string;
  network: {
    peer_id: string;
    peers: Peer[];
    topics: string[];
    connections?: { incoming: number; outgoing: number; max_established: number };
  };
  log: { entries: number; feeds: number; forks: number; pending: number; rejected: number };
  feeds: FeedStatus[];
  quarantined: FeedStatus[];
}

export interface Segment {
  from_ms: number;
  to_ms: number;
  standing: string;
}

export interface TimelineClaim {
  claim_id: string;
  author: string;
  action: string;
  priority: number;
  claimed_ms: number;
  late?: boolean;
  late_after_ms?: number;
  segments: Segment[];
}

export interface TimelineConstraint {
  entry_id: string;
  author: string;
  resource: string;
  rule: { type: string; limit?: number; at?: number; claims?: number; windowMs?: number };
  note: string;
  published_ms: number;
  expires_ms: number;
}

export interface ResourceTimeline {
  resource: string;
  claims: TimelineClaim[];
  constraints: TimelineConstraint[];
}

export interface Timeline {
  namespace: string;
  from_ms: number;
  to_ms: number;
  resources: ResourceTimeline[];
  truncated: boolean;
}
