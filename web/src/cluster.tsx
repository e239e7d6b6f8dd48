// The cluster panel of the System screen: the nodes and how they look from this one, which node drives which
// printer, and whether this node has the quorum (GET /v1/cluster, read again every few seconds while shown).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { Badge, Note, Section, messageOf } from './ui';
import { ago } from './words';

interface ClusterNode {
  name: string;
  url?: string;
  state: 'up' | 'silent' | 'gone';
  lastSeen: string;
  drives: string[];
}

interface ClusterView {
  clustered: boolean;
  node: string;
  ready?: boolean;
  reason?: string;
  replicas?: number;
  nodes?: ClusterNode[];
  printers?: { id: string; name: string; drivenBy: string | null }[];
}

const REFRESH_MS = 2000; // a takeover takes a few seconds: the panel follows it without a reload

const NODE_WORDS: Record<ClusterNode['state'], { label: string; tone: string }> = {
  up: { label: 'Up', tone: 'ok' },
  silent: { label: 'Not heard lately', tone: 'warn' },
  gone: { label: 'Gone', tone: 'bad' },
};

export function ClusterPanel() {
  const [view, setView] = useState<ClusterView | null>(null);
  const [problem, setProblem] = useState('');
  useEffect(() => {
    let stopped = false;
    const load = () =>
      api<ClusterView>('GET', '/v1/cluster').then(
        (v) => !stopped && (setView(v), setProblem('')),
        (e) => !stopped && setProblem(messageOf(e)),
      );
    void load();
    const t = setInterval(load, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }, []);
  if (!view) return problem ? <Note kind="warn">The cluster view is not available: {problem}</Note> : null;
  if (!view.clustered) {
    return (
      <Section title="Cluster" id="cluster-title">
        <p class="empty" data-testid="cluster-single">
          Single box: this appliance keeps its own journal and is not part of a cluster.
        </p>
      </Section>
    );
  }
  const printerNames = new Map((view.printers ?? []).map((p) => [p.id, p.name]));
  return (
    <Section title="Cluster" id="cluster-title" actions={<Badge tone={view.ready ? 'ok' : 'bad'}>{view.ready ? 'Quorum' : 'No quorum'}</Badge>}>
      <div class="cluster">
        {problem && <Note kind="warn">Showing the last view: {problem}</Note>}
        <p data-testid="cluster-quorum" data-ready={String(!!view.ready)}>
          {view.ready
            ? `This node (${view.node}) is in the quorum: it accepts jobs and may print (JetStream keeps ${view.replicas} copies).`
            : `This node (${view.node}) is cut off: ${view.reason ?? 'no quorum'}.`}
        </p>
        <h3>Nodes</h3>
        <ul class="rows" data-testid="cluster-nodes">
          {(view.nodes ?? []).map((n) => (
            <li class="token-row" data-testid={`cluster-node-${n.name}`} data-state={n.state}>
              <span>
                <strong>{n.name}</strong>
                {n.name === view.node && ' (this node)'}
                <span class="hint">
                  {n.url ? `${n.url} · ` : ''}last heard {ago(n.lastSeen)}
                  {n.drives.length ? ` · drives ${n.drives.map((id) => printerNames.get(id) ?? id).join(', ')}` : ''}
                </span>
              </span>
              <Badge tone={NODE_WORDS[n.state].tone}>{NODE_WORDS[n.state].label}</Badge>
            </li>
          ))}
        </ul>
        <h3>Printers</h3>
        {!view.printers?.length && <p class="empty">No printers yet.</p>}
        <ul class="rows" data-testid="cluster-printers">
          {(view.printers ?? []).map((p) => (
            <li class="token-row" data-testid={`cluster-printer-${p.name}`} data-driver={p.drivenBy ?? ''}>
              <strong>{p.name}</strong>
              {p.drivenBy ? <span>driven by {p.drivenBy}</span> : <Badge tone="warn">No node drives it right now</Badge>}
            </li>
          ))}
        </ul>
      </div>
    </Section>
  );
}
