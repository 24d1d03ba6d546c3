// Which node owns a (function, key): rendezvous (highest random weight) hashing over a group's nodes.
//
// Every node computes the same owner from the same set of names, with no coordination; when a
// node leaves, only the keys it owned move (each to its next-highest node), and a node joining
// takes over only the keys it now scores highest on.

/** The node among `nodes` that owns `key` of function `fn`; undefined when there are none. */
export function ownerOf(nodes: readonly string[], fn: string, key: string): string | undefined {
  const keyHash = hashString(key, hashString(fn, 0x811c9dc5) ^ 0x5bd1e995);
  let best: string | undefined;
  let bestScore = -1;
  for (const node of nodes) {
    const score = mix32(nodeHash(node) ^ Math.imul(keyHash, 0x9e3779b1));
    if (score > bestScore || (score === bestScore && best !== undefined && node < best)) {
      best = node;
      bestScore = score;
    }
  }
  return best;
}

/** Node names' hashes: a cluster has a handful of names, and each key's owner is asked often. */
const nodeHashes = new Map<string, number>();
/** Past this many names (nodes come and go over a long life) the memo starts over. */
const NODE_HASHES_KEPT = 1024;

function nodeHash(node: string): number {
  let h = nodeHashes.get(node);
  if (h === undefined) {
    if (nodeHashes.size >= NODE_HASHES_KEPT) nodeHashes.clear();
    h = hashString(node, 0x811c9dc5);
    nodeHashes.set(node, h);
  }
  return h;
}

// FNV-1a over UTF-16 code units, from `seed`: cheap and the same on every node.
function hashString(s: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// Murmur3's finaliser: spreads every input bit over the output, so scores of nearby inputs differ.
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
