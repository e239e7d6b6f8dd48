// The setup page: first-run setup, sign-in, then the screens (printers, queue, tokens, certificate, system).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { api, onSignedOut, setCsrf } from './api';
import type { SetupInfo } from './types';
import { Onboarding, SignIn } from './setup';
import { useLive } from './live';
import { PrintersScreen } from './printers';
import { QueueScreen } from './queue';
import { TokensScreen } from './tokens';
import { CertificateScreen } from './certificate';
import { SystemScreen } from './system';
import { Note, messageOf } from './ui';

type Phase = 'loading' | 'setup' | 'signin' | 'in' | 'unreachable';

const SCREENS = [
  { id: 'printers', title: 'Printers' },
  { id: 'queue', title: 'Queue' },
  { id: 'tokens', title: 'Tokens' },
  { id: 'certificate', title: 'Certificate' },
  { id: 'system', title: 'System' },
] as const;
type ScreenId = (typeof SCREENS)[number]['id'];

function screenFromHash(): ScreenId {
  const id = location.hash.replace(/^#\/?/, '');
  return (SCREENS.find((s) => s.id === id)?.id ?? 'printers') as ScreenId;
}

function App() {
  const [phase, setPhase] = useState<Phase>('loading');
  const [info, setInfo] = useState<SetupInfo>({ needsSetup: false, name: '', fingerprint: '', names: [] });
  const [notice, setNotice] = useState('');
  const [problem, setProblem] = useState('');

  const start = async () => {
    try {
      const s = await api<SetupInfo>('GET', '/v1/setup');
      setInfo(s);
      if (s.needsSetup) return setPhase('setup');
      const session = await api<{ signedIn: boolean; expired: boolean; csrf?: string }>('GET', '/v1/session');
      if (session.signedIn) {
        setCsrf(session.csrf!);
        return setPhase('in');
      }
      if (session.expired) setNotice('Your sign-in has expired. Please sign in again.');
      setPhase('signin');
    } catch (err) {
      setProblem(messageOf(err));
      setPhase('unreachable');
    }
  };

  useEffect(() => {
    onSignedOut((n) => {
      setNotice(n);
      setPhase('signin');
    });
    void start();
  }, []);

  switch (phase) {
    case 'loading':
      return <p class="boot">Loading printbox…</p>;
    case 'unreachable':
      return (
        <main class="narrow">
          <h1>printbox</h1>
          <Note kind="error">{problem}</Note>
          <button class="primary" onClick={() => void start()}>
            Try again
          </button>
        </main>
      );
    case 'setup':
      return (
        <Onboarding
          info={info}
          onDone={(name) => {
            setInfo({ ...info, name, needsSetup: false });
            setPhase('in');
          }}
        />
      );
    case 'signin':
      return (
        <SignIn
          info={info}
          notice={notice}
          onDone={() => {
            setNotice('');
            setPhase('in');
          }}
        />
      );
    case 'in':
      return (
        <Shell
          info={info}
          onSignOut={async () => {
            await api('DELETE', '/v1/session').catch(() => {});
            setCsrf('');
            setNotice('You are signed out.');
            setPhase('signin');
          }}
        />
      );
  }
}

function Shell(props: { info: SetupInfo; onSignOut: () => void }) {
  const [screen, setScreen] = useState<ScreenId>(screenFromHash());
  const live = useLive();
  useEffect(() => {
    const onHash = () => setScreen(screenFromHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => {
    document.title = `${SCREENS.find((s) => s.id === screen)!.title} · printbox ${props.info.name}`;
    document.getElementById('main')?.focus();
  }, [screen]);
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <div class="brand">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <span>
            printbox <strong data-testid="appliance-name">{props.info.name}</strong>
          </span>
        </div>
        <span class={`live ${live.connected ? 'on' : 'off'}`} role="status" data-testid="live">
          {live.connected ? 'Live' : 'Reconnecting…'}
        </span>
        <button class="plain" onClick={props.onSignOut}>
          Sign out
        </button>
      </header>
      <nav class="tabs" aria-label="Screens">
        {SCREENS.map((s) => (
          <a href={`#/${s.id}`} aria-current={s.id === screen ? 'page' : undefined} data-testid={`tab-${s.id}`}>
            {s.title}
          </a>
        ))}
      </nav>
      <main id="main" tabIndex={-1}>
        {screen === 'printers' && <PrintersScreen live={live} />}
        {screen === 'queue' && <QueueScreen live={live} />}
        {screen === 'tokens' && <TokensScreen />}
        {screen === 'certificate' && <CertificateScreen />}
        {screen === 'system' && <SystemScreen name={props.info.name} />}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
