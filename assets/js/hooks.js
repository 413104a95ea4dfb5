// The few calls that go up the module graph. A module low in the graph (the socket, the screen
// switch, a poll, a history page) sometimes has to start something that lives above it;
// importing that would close an import cycle, so it calls through `hooks` instead, and app.js
// fills every slot in at startup (registerHooks), before anything can call one.
//
//   toAuth(message?)            the session is gone: back to the login screen (session.js)
//   unpaired()                  the couple is gone: forget the chat, back to pairing (session.js)
//   shown(screen)               a screen was shown: the others let go of their timers and socket
//   frame(f)                    a parsed server frame, from the socket (connection.js -> frames.js)
//   socketClosed(code, hadHello, lived)  the socket closed: what it means for the app (session
//                               gone, couple gone, or reconnect after a backoff) (connection.js -> chat.js)
//   openAt(seq)                 show the conversation around a chat (a quote clicked) (timeline.js -> story.js)
//   bubbleMenu(rec)             a bubble's menu: react, reply, edit (timeline.js -> gestures.js)
//   showVersions(rec)           an edited chat's earlier versions (timeline.js -> gestures.js)

const unset = (name) => () => {
  throw new Error(`duet: hook ${name} is not registered`);
};

export const hooks = {
  toAuth: unset('toAuth'),
  unpaired: unset('unpaired'),
  shown: unset('shown'),
  frame: unset('frame'),
  socketClosed: unset('socketClosed'),
  openAt: unset('openAt'),
  bubbleMenu: unset('bubbleMenu'),
  showVersions: unset('showVersions'),
};

export function registerHooks(fns) {
  for (const [name, fn] of Object.entries(fns)) {
    if (!(name in hooks)) throw new Error(`duet: no hook named ${name}`);
    hooks[name] = fn;
  }
}
