// API tokens: create (shown once, with a copy button), list, revoke.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import type { Token } from './types';
import { ActionButton, Note, Section, useAction } from './ui';
import { ago, when } from './words';

export function TokensScreen() {
  const [tokens, setTokens] = useState<Token[] | null>(null);
  const [loadError, setLoadError] = useState('');
  const [name, setName] = useState('');
  const [scope, setScope] = useState<'submit' | 'admin'>('submit');
  const [fresh, setFresh] = useState<{ name: string; token: string } | null>(null);
  const [copied, setCopied] = useState('');
  const a = useAction();
  const load = () => api<{ tokens: Token[] }>('GET', '/v1/tokens').then((r) => setTokens(r.tokens), (e) => setLoadError(e.message));
  useEffect(() => void load(), []);

  const create = (e: Event) => {
    e.preventDefault();
    void a.run(async () => {
      const r = await api<Token & { token: string }>('POST', '/v1/tokens', { name: name.trim() || 'token', scope });
      setFresh({ name: r.name, token: r.token });
      setCopied('');
      setName('');
      await load();
    });
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(fresh!.token);
      setCopied('Copied.');
    } catch {
      // No clipboard permission (or an old browser): select the text so the user can copy it by hand.
      const el = document.getElementById('new-token') as HTMLInputElement | null;
      el?.select();
      setCopied('Selected — copy it with Ctrl+C (or long-press).');
    }
  };

  return (
    <>
      <Section title="API tokens" id="tokens-title">
        <p class="lead">Applications send a token with each request (“Authorization: Bearer …”). A <em>submit</em> token can print and see its own jobs; an <em>admin</em> token can change everything.</p>
        <form class="inline-form" onSubmit={create} data-testid="token-form">
          <label>
            Name
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} maxLength={64} placeholder="accounting-app" name="token-name" />
          </label>
          <label>
            Can
            <select value={scope} onChange={(e) => setScope(e.currentTarget.value as 'submit' | 'admin')} name="scope">
              <option value="submit">print (submit)</option>
              <option value="admin">do everything (admin)</option>
            </select>
          </label>
          <button class="primary" type="submit" disabled={a.busy}>
            {a.busy ? 'Creating…' : 'Create token'}
          </button>
        </form>
        <Note kind="error">{a.error}</Note>
        {fresh && (
          <div class="secret" role="status" data-testid="new-token-box">
            <p>
              <strong>Token “{fresh.name}”</strong> — copy it now. It is shown only once; the box keeps only a hash of it.
            </p>
            <div class="copy-row">
              <input id="new-token" readOnly value={fresh.token} data-testid="new-token" aria-label="The new token" onFocus={(e) => e.currentTarget.select()} />
              <button type="button" class="primary" onClick={copy}>
                Copy
              </button>
            </div>
            {copied && <p class="hint">{copied}</p>}
            <button type="button" onClick={() => setFresh(null)}>
              I have copied it
            </button>
          </div>
        )}
      </Section>
      <Section title="Tokens in use" id="tokens-list-title">
        <Note kind="error">{loadError}</Note>
        {tokens?.length === 0 && <p class="empty">No tokens. Create one above for each application.</p>}
        <ul class="rows">
          {tokens?.map((t) => (
            <li class="token-row" data-testid={`token-${t.name}`}>
              <div>
                <strong>{t.name}</strong> <span class={`badge ${t.scope === 'admin' ? 'warn' : 'muted'}`}>{t.scope}</span>
                <p class="meta">
                  created {when(t.createdAt)} · {t.lastUsedAt ? `last used ${ago(t.lastUsedAt)}` : 'never used'}
                </p>
              </div>
              <ActionButton
                label="Revoke"
                kind="danger"
                testid="revoke"
                confirm={`Revoke token “${t.name}”? Applications using it are refused from now on.`}
                onClick={async () => {
                  await api('DELETE', `/v1/tokens/${t.id}`);
                  await load();
                }}
              />
            </li>
          ))}
        </ul>
      </Section>
    </>
  );
}
