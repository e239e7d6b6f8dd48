// The screens before the admin is in: first-run setup (password, name, fingerprint check) and sign-in.
import { useState } from 'preact/hooks';
import { api, setCsrf } from './api';
import type { SetupInfo } from './types';
import { Note, useAction } from './ui';

function Fingerprint(props: { info: SetupInfo }) {
  return (
    <div class="fingerprint-box">
      <p>
        Check that you are talking to <em>your</em> box: open the certificate details in your browser (the padlock or “Not secure” next to the address) and compare its
        <strong> SHA-256 fingerprint</strong> with this one, printed by the box:
      </p>
      <code class="fingerprint" data-testid="fingerprint">
        {props.info.fingerprint}
      </code>
      <p class="hint">The box also logs it when it starts. If they differ, stop: someone may be between you and the box.</p>
    </div>
  );
}

export function Onboarding(props: { info: SetupInfo; onDone: (name: string) => void }) {
  const [name, setName] = useState(props.info.name);
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [setupCode, setSetupCode] = useState('');
  const a = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    if (password !== again) return a.setError('The two passwords are not the same.');
    if ([...password].length < 8) return a.setError('Choose a password of at least 8 characters.');
    void a.run(async () => {
      const r = await api<{ csrf: string }>('POST', '/v1/setup', { password, name, setupCode });
      setCsrf(r.csrf);
      props.onDone(name);
    });
  };
  return (
    <main class="narrow">
      <h1>Welcome to printbox</h1>
      <p class="lead">Three things and your print appliance is ready: check its certificate, enter the setup code it shows on its console, and choose the admin password.</p>
      <section class="card">
        <h2>1. Is this your box?</h2>
        <Fingerprint info={props.info} />
      </section>
      <form class="card" onSubmit={submit} data-testid="setup-form">
        <h2>2. Setup code, name and password</h2>
        {props.info.setupWindow === 'closed' && (
          <Note kind="error" testid="setup-closed">
            This box already has admin API tokens, so setup from this page is closed. Set the admin password with one of them: POST /v1/session/password.
          </Note>
        )}
        <label>
          Setup code
          <input value={setupCode} onInput={(e) => setSetupCode(e.currentTarget.value)} required autoComplete="off" name="setupCode" spellcheck={false} />
          <span class="hint">Shown on the box's console, in its first-start output, and by <code>printbox setup-code</code> on the box. It proves you are at the box.</span>
        </label>
        <label>
          Appliance name
          <input value={name} onInput={(e) => setName(e.currentTarget.value)} maxLength={48} required autoComplete="off" name="name" />
          <span class="hint">Shown on this page and announced on the network (after a restart).</span>
        </label>
        <label>
          Admin password
          <input type="password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} minLength={8} required autoComplete="new-password" name="password" />
          <span class="hint">At least 8 characters. Anyone with it can change this box.</span>
        </label>
        <label>
          The same password again
          <input type="password" value={again} onInput={(e) => setAgain(e.currentTarget.value)} required autoComplete="new-password" name="password2" />
        </label>
        <Note kind="error" testid="setup-error">
          {a.error}
        </Note>
        <button class="primary" type="submit" disabled={a.busy}>
          {a.busy ? 'Setting up…' : 'Finish setup'}
        </button>
      </form>
    </main>
  );
}

export function SignIn(props: { info: SetupInfo; notice: string; onDone: () => void }) {
  const [password, setPassword] = useState('');
  const a = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void a.run(async () => {
      const r = await api<{ csrf: string }>('POST', '/v1/session', { password });
      setCsrf(r.csrf);
      props.onDone();
    });
  };
  return (
    <main class="narrow">
      <h1>printbox {props.info.name}</h1>
      <form class="card" onSubmit={submit} data-testid="login-form">
        <h2>Sign in</h2>
        <Note kind="info" testid="login-notice">
          {props.notice}
        </Note>
        <label>
          Admin password
          <input type="password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} required autoComplete="current-password" name="password" autoFocus />
        </label>
        <Note kind="error" testid="login-error">
          {a.error}
        </Note>
        <button class="primary" type="submit" disabled={a.busy}>
          {a.busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="hint">
          Forgot it? Anyone with an admin API token can set a new one: <code>POST /v1/session/password</code> with <code>{'{"password": "…"}'}</code>. Sign-ins live in memory: a restart of the box signs everyone out.
        </p>
      </form>
      <details class="card">
        <summary>Certificate fingerprint</summary>
        <Fingerprint info={props.info} />
      </details>
    </main>
  );
}
