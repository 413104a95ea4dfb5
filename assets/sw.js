// Duet's service worker: keeps the app shell (the files of assets/, by version) so the app
// opens without a network, and hands over to a new version only when the page asks
// (js/install.js), so a running conversation never changes code under its feet.
// The server writes `SHELL` ({ version, files }) above this file (src/http/shell.rs).
/* global SHELL */

const PREFIX = 'duet-shell-';
const CACHE = PREFIX + SHELL.version;
// Always from the network: the API, the socket, probes, and the worker itself.
const LIVE = /^\/(api\/|ws$|healthz$|readyz$|sw\.js$)/;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL.files)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names
      .filter((name) => name.startsWith(PREFIX) && name !== CACHE)
      .map((name) => caches.delete(name)));
    // The first version takes the open pages at once; later ones only when asked (below).
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'take-over') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || LIVE.test(url.pathname)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    // Every page of the app is the one page at `/`.
    const hit = request.mode === 'navigate'
      ? await cache.match('/')
      : await cache.match(request);
    return hit || fetch(request);
  })());
});

// Web Push (docs/PROTOCOL.md, "Web Push"): the server pushes a partner's chat, a question, an
// answer or a calendar change while none of this user's clients looks at the conversation.
// The browser has decrypted it; its JSON says what, how many, and from whom. A push merges
// into the notification of its kind already shown, so a burst is one notification that counts:
// a chat's number is the server's count of unread chats; other kinds add up. The page closes
// them when the conversation is looked at.

const WORDS = {
  en: {
    message: 'New message',
    messages: (n) => `${n} new messages`,
    file: 'Sent a file',
    question: 'A question for you two',
    questionBody: 'Answer it to keep chatting',
    questions: (n) => `${n} new questions`,
    answered: 'answered a question',
    dates: 'changed your calendar',
    nudge: 'is thinking of you 💗',
    partner: 'Your partner',
  },
  ko: {
    message: '새 메시지',
    messages: (n) => `새 메시지 ${n}개`,
    file: '파일을 보냈어요',
    question: '두 사람에게 온 질문',
    questionBody: '답해야 대화를 이어갈 수 있어요',
    questions: (n) => `새 질문 ${n}개`,
    answered: '질문에 답했어요',
    dates: '우리의 기념일을 바꿨어요',
    nudge: '님이 당신을 생각하고 있어요 💗',
    partner: '상대',
  },
};

function words() {
  return (self.navigator.language || '').toLowerCase().startsWith('ko') ? WORDS.ko : WORDS.en;
}

/** The notification a push (merged with what is shown of its kind) makes. */
function notification(push, shown) {
  const w = words();
  const before = shown && shown.data ? shown.data : null;
  const count = typeof push.unread === 'number' && push.unread > 0
    ? push.unread
    : (before ? before.count : 0) + (push.count || 1);
  const seqs = [before && before.seq, push.seq].filter((s) => typeof s === 'number');
  const data = { kind: push.kind, count, seq: seqs.length ? Math.min(...seqs) : null };
  const from = push.from || w.partner;
  let title = from;
  let body;
  if (push.kind === 'chat') {
    body = count > 1 ? w.messages(count) : (push.text || (push.file ? w.file : w.message));
  } else if (push.kind === 'question') {
    title = w.question;
    body = count > 1 ? w.questions(count) : (push.text || w.questionBody);
  } else if (push.kind === 'answer') {
    body = w.answered;
  } else if (push.kind === 'nudge') {
    body = w === WORDS.ko ? `${from}${w.nudge}` : `${from} ${w.nudge}`;
  } else {
    body = w.dates;
  }
  return {
    title,
    options: {
      body,
      tag: `duet-${push.kind}`,
      // A merged notification still alerts: a new chat hours later is not a silent update.
      renotify: true,
      data,
      icon: '/icons/icon-192.png',
      badge: '/icons/icon-192.png',
      lang: words() === WORDS.ko ? 'ko' : 'en',
    },
  };
}

self.addEventListener('push', (event) => {
  let push;
  try {
    push = event.data ? event.data.json() : null;
  } catch {
    push = null;
  }
  if (!push || typeof push.kind !== 'string') push = { kind: 'chat', count: 1 };
  event.waitUntil((async () => {
    const [shown] = await self.registration.getNotifications({ tag: `duet-${push.kind}` });
    const { title, options } = notification(push, shown);
    await self.registration.showNotification(title, options);
    if ('setAppBadge' in self.navigator) {
      const all = await self.registration.getNotifications();
      const unread = all.reduce((n, x) => n + ((x.data && x.data.count) || 0), 0);
      await self.navigator.setAppBadge(unread).catch(() => {});
    }
  })());
});

/** Opens Duet at the chat a notification is about: an open window is focused and told where;
 * with none, a new one opens there. */
async function openAt(data) {
  const seq = data && typeof data.seq === 'number' ? data.seq : null;
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const open = windows.find((w) => new URL(w.url).origin === self.location.origin);
  if (open) {
    await open.focus().catch(() => {});
    open.postMessage({ type: 'open-chat', seq });
    return;
  }
  await self.clients.openWindow(seq != null ? `/?seq=${seq}` : '/');
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(openAt(event.notification.data));
});
