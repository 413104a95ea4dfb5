// Duet UI strings in Korean and English. The language comes from localStorage ("duet.lang")
// when the user picked one, else from navigator.language; the header button switches it.
// Only UI text lives here: never user data.

const STORAGE_KEY = 'duet.lang';

const STRINGS = {
  en: {
    'app.tagline': 'Just the two of you.',
    'app.loading': 'Opening Duet…',
    'app.unreachable': 'Can’t reach Duet right now.',
    'app.retry': 'Try again',
    'update.ready': 'A new version of Duet is ready.',
    'update.reload': 'Reload',
    'lang.switch': '한국어',
    'lang.switch_label': '한국어: switch the language to Korean',

    'auth.title_login': 'Log in or create an account',
    'auth.title_signup': 'Create your account',
    'auth.username': 'Username',
    'auth.password': 'Password',
    'auth.username_hint': '3–32 letters, digits, _ . -',
    'auth.password_hint': 'At least 8 characters',
    'auth.login': 'Log in',
    'auth.signup': 'Sign up',
    'auth.to_signup': 'New here? Create an account',
    'auth.to_login': 'Already have an account? Log in',
    'auth.show_password': 'Show password',
    'auth.hide_password': 'Hide password',
    'auth.username_available': 'This username is free.',
    'auth.username_taken': 'This username is taken (log in if it’s yours).',

    'pair.title': 'Find your person',
    'pair.lead': 'Send a pairing request to your partner’s username. When they accept, your chat opens.',
    'pair.username': 'Partner’s username',
    'pair.send': 'Send request',
    'pair.sent_ok': 'Request sent to {name}.',
    'pair.received': 'Requests for you',
    'pair.sent': 'Requests you sent',
    'pair.none_received': 'No requests yet.',
    'pair.none_sent': 'You haven’t sent any requests.',
    'pair.from': '{name} wants to be your Duet',
    'pair.to': 'Waiting for {name}',
    'pair.accept': 'Accept',
    'pair.decline': 'Decline',
    'pair.cancel': 'Cancel',
    'pair.signed_in_as': 'Signed in as {name}',

    'chat.partner_online': 'Online',
    'chat.partner_offline': 'Offline',
    'chat.message': 'Message',
    'chat.placeholder': 'Write something sweet…',
    'chat.send': 'Send',
    'chat.attach': 'Attach a file',
    'chat.drop': 'Drop to send',
    'chat.typing': '{name} is typing…',
    'chat.read': 'Read',
    'chat.sending': 'Sending…',
    'chat.waiting': 'Waiting for the network',
    'chat.uploading': 'Uploading… {pct}%',
    'chat.failed': 'Not sent',
    'chat.retry': 'Retry',
    'chat.discard': 'Discard',
    'chat.delete': 'Delete',
    'chat.delete_confirm': 'Delete this message for both of you?',
    'chat.deleted': 'Message deleted',
    'chat.today': 'Today',
    'chat.yesterday': 'Yesterday',
    'chat.empty': 'Say hello 👋 This space is just for the two of you.',
    'chat.loading_older': 'Loading earlier messages…',
    'chat.beginning': 'This is the beginning of your story.',
    'chat.new_messages': 'New messages',
    'chat.messages': 'Messages',
    'chat.new_from': '{name}: {text}',
    'chat.new_file_from': '{name} sent a file: {file}',
    'chat.too_long': 'Messages can be at most 4000 characters.',
    'chat.download': 'Download {name}',
    'chat.question_event': 'Question',
    'chat.you': 'You',

    'conn.connecting': 'Connecting…',
    'conn.online': 'Connected',
    'conn.reconnecting': 'Reconnecting in {s}s',
    'conn.reconnecting_now': 'Reconnecting…',
    'conn.offline': 'No network',
    'conn.reconnect_now': 'Reconnect now',

    'menu.answers': 'Answers',
    'menu.anniversaries': 'Anniversaries',
    'menu.words': 'Our words',
    'menu.export': 'Download our story',
    'notify.on': 'Notifications: on',
    'notify.off': 'Notifications: off',
    'notify.unsupported': 'This browser can’t show notifications.',
    'notify.denied': 'Notifications are blocked for this site in the browser’s settings.',
    'notify.file': 'Sent a file',
    'notify.silent': 'Send the next message silently',
    'search.open': 'Search our chats',
    'search.title': 'Search our chats',
    'search.placeholder': 'A word, e.g. 여행',
    'search.go': 'Search',
    'search.date': 'Jump to a day',
    'search.jump': 'Go',
    'search.more': 'More',
    'search.count': '{n} found',
    'search.none': 'Nothing found.',
    'search.nothing_since': 'Nothing from that day on.',
    'chat.jump_latest': 'Jump to latest',
    'chat.jump_latest_new': 'Jump to latest · {n} new',
    'cal.title': 'Our days',
    'cal.together': '{n} days together',
    'cal.together_one': '{n} day together',
    'cal.summary': 'Day {n} since {date}.',
    'cal.days_milestone': '{n} days',
    'cal.years_milestone': '{n} years',
    'cal.year_one': '1 year',
    'cal.start': 'Our day one',
    'cal.zone': 'Our dates are in {zone}.',
    'cal.use_zone': 'Use {zone}',
    'cal.save': 'Save',
    'cal.saved': 'Saved.',
    'cal.add': 'Add our own date',
    'cal.own_title': 'Title',
    'cal.own_date': 'Date',
    'cal.yearly': 'Every year',
    'cal.add_button': 'Add',
    'cal.remove': 'Remove this date',
    'words.title': 'Our words',
    'words.counts': 'you {mine} · {name} {partner}',
    'words.exclude': 'Leave out',
    'words.include': 'Bring back',
    'words.excluded': 'Left out',
    'words.empty': 'No words yet: chat a little first.',
    'words.counting': 'Still counting a long history…',
    'menu.more': 'More',
    'menu.breakup': 'Break up',
    'menu.logout': 'Log out',
    'menu.password': 'Change password',

    'password.title': 'Change password',
    'password.old': 'Current password',
    'password.new': 'New password',
    'password.others_note': 'Your other devices will be logged out.',
    'password.submit': 'Change password',
    'password.changed': 'Password changed. Your other devices are logged out.',
    'password.wrong_old': 'Your current password is not right.',

    'breakup.confirm': 'End your Duet? Your chats, files and answers will be deleted after a grace period. You can take it back until then.',
    'breakup.ok': 'Break up',
    'breakup.banner': 'This Duet will be deleted on {date}.',
    'breakup.restore': 'Take it back',
    'breakup.restored': 'Welcome back. Nothing was deleted.',

    'q.title': 'A question for you two',
    'q.lead': 'Answer to keep chatting. Your partner sees your answer once they answer too.',
    'q.answer': 'Your answer',
    'q.submit': 'Answer',
    'q.sending': 'Sending…',
    'q.unknown': 'Please answer the open question first.',
    'q.answered_both': 'Both answered',
    'q.answered_me': 'You answered',
    'q.answered_partner': '{name} answered',
    'q.waiting': 'Waiting for answers',

    'answers.title': 'Our answers',
    'answers.close': 'Close',
    'answers.me': 'You',
    'answers.partner': '{name}',
    'answers.hidden': 'Answer first to see {name}’s answer.',
    'answers.waiting': 'Waiting for {name}…',
    'answers.not_yet': 'Not answered yet',
    'answers.empty': 'No questions yet. They pop up as you chat.',
    'answers.unavailable': 'Answers aren’t available yet.',
    'answers.loading': 'Loading…',

    'dialog.cancel': 'Cancel',
    'dialog.ok': 'OK',

    'file.too_large': 'That file is too large (limit 20 MiB).',
    'file.unavailable': 'File sharing isn’t available yet.',
    'file.failed': 'Upload failed.',

    'err.invalid_input': 'Please check what you entered.',
    'err.unauthenticated': 'Please log in again.',
    'err.invalid_credentials': 'Wrong username or password.',
    'err.forbidden_origin': 'This page isn’t allowed to talk to the server.',
    'err.not_found': 'Not found.',
    'err.not_found_user': 'There’s no one with that username.',
    'err.username_taken': 'That username is taken. Try another one.',
    'err.already_paired': 'One of you is already in a Duet.',
    'err.not_paired': 'You’re not paired yet.',
    'err.duplicate_request': 'There’s already a request between you two.',
    'err.too_large': 'That’s too large.',
    'err.too_long': 'That message is too long (max 4000 characters).',
    'err.rate_limited': 'Slow down a little and try again.',
    'err.unavailable': 'The server is busy. Try again in a moment.',
    'err.internal': 'Something went wrong on our side.',
    'err.answer_required': 'Answer the question first.',
    'err.forbidden': 'You can’t do that.',
    'err.network': 'Network problem. Check your connection.',
    'err.unknown': 'Something went wrong.',
    'err.self': 'You can’t pair with yourself.',
    'err.username_rule': 'Usernames are 3–32 letters, digits, _ . or -.',
    'err.password_rule': 'Passwords are 8–128 characters.',
    'err.delete_failed': 'Couldn’t delete that message.',
    'err.not_implemented': 'That isn’t available yet.',
  },
  ko: {
    'app.tagline': '둘만의 대화.',
    'app.loading': 'Duet 여는 중…',
    'app.unreachable': '지금은 Duet에 연결할 수 없어요.',
    'app.retry': '다시 시도',
    'update.ready': '새 버전의 Duet이 준비됐어요.',
    'update.reload': '새로고침',
    'lang.switch': 'English',
    'lang.switch_label': 'English: 영어로 바꾸기',

    'auth.title_login': '로그인하거나 새로 가입하세요',
    'auth.title_signup': '계정 만들기',
    'auth.username': '아이디',
    'auth.password': '비밀번호',
    'auth.username_hint': '3~32자: 글자, 숫자, _ . -',
    'auth.password_hint': '8자 이상',
    'auth.login': '로그인',
    'auth.signup': '가입하기',
    'auth.to_signup': '처음이신가요? 계정 만들기',
    'auth.to_login': '이미 계정이 있나요? 로그인',
    'auth.show_password': '비밀번호 보기',
    'auth.hide_password': '비밀번호 숨기기',
    'auth.username_available': '쓸 수 있는 아이디예요.',
    'auth.username_taken': '이미 있는 아이디예요 (내 아이디라면 로그인하세요).',

    'pair.title': '나의 짝 찾기',
    'pair.lead': '상대의 아이디로 연결 요청을 보내세요. 상대가 수락하면 대화가 시작돼요.',
    'pair.username': '상대 아이디',
    'pair.send': '요청 보내기',
    'pair.sent_ok': '{name}님에게 요청을 보냈어요.',
    'pair.received': '받은 요청',
    'pair.sent': '보낸 요청',
    'pair.none_received': '아직 받은 요청이 없어요.',
    'pair.none_sent': '보낸 요청이 없어요.',
    'pair.from': '{name}님이 연결을 원해요',
    'pair.to': '{name}님의 응답을 기다리는 중',
    'pair.accept': '수락',
    'pair.decline': '거절',
    'pair.cancel': '취소',
    'pair.signed_in_as': '{name}(으)로 로그인함',

    'chat.partner_online': '접속 중',
    'chat.partner_offline': '오프라인',
    'chat.message': '메시지',
    'chat.placeholder': '다정한 한마디를 적어 보세요…',
    'chat.send': '보내기',
    'chat.attach': '파일 첨부',
    'chat.drop': '놓으면 보내요',
    'chat.typing': '{name}님이 입력 중…',
    'chat.read': '읽음',
    'chat.sending': '보내는 중…',
    'chat.waiting': '연결되면 보낼게요',
    'chat.uploading': '올리는 중… {pct}%',
    'chat.failed': '전송 실패',
    'chat.retry': '다시 보내기',
    'chat.discard': '지우기',
    'chat.delete': '삭제',
    'chat.delete_confirm': '이 메시지를 둘 다에게서 삭제할까요?',
    'chat.deleted': '삭제된 메시지',
    'chat.today': '오늘',
    'chat.yesterday': '어제',
    'chat.empty': '첫 인사를 건네 보세요 👋 둘만을 위한 공간이에요.',
    'chat.loading_older': '이전 메시지 불러오는 중…',
    'chat.beginning': '두 사람의 이야기가 여기서 시작됐어요.',
    'chat.new_messages': '새 메시지',
    'chat.messages': '메시지',
    'chat.new_from': '{name}: {text}',
    'chat.new_file_from': '{name}님이 파일을 보냈어요: {file}',
    'chat.too_long': '메시지는 4000자까지 보낼 수 있어요.',
    'chat.download': '{name} 내려받기',
    'chat.question_event': '질문',
    'chat.you': '나',

    'conn.connecting': '연결 중…',
    'conn.online': '연결됨',
    'conn.reconnecting': '{s}초 후 다시 연결',
    'conn.reconnecting_now': '다시 연결 중…',
    'conn.offline': '네트워크 없음',
    'conn.reconnect_now': '지금 다시 연결',

    'menu.answers': '우리의 답',
    'menu.anniversaries': '기념일',
    'menu.words': '우리의 단어',
    'menu.export': '우리 이야기 내려받기',
    'notify.on': '알림: 켜짐',
    'notify.off': '알림: 꺼짐',
    'notify.unsupported': '이 브라우저는 알림을 보여줄 수 없어요.',
    'notify.denied': '브라우저 설정에서 이 사이트의 알림이 차단되어 있어요.',
    'notify.file': '파일을 보냈어요',
    'notify.silent': '다음 메시지를 조용히 보내기',
    'search.open': '대화 검색',
    'search.title': '대화 검색',
    'search.placeholder': '단어, 예: 여행',
    'search.go': '검색',
    'search.date': '날짜로 이동',
    'search.jump': '이동',
    'search.more': '더 보기',
    'search.count': '{n}개 찾음',
    'search.none': '찾은 대화가 없어요.',
    'search.nothing_since': '그날 이후로 나눈 대화가 없어요.',
    'chat.jump_latest': '최신 대화로',
    'chat.jump_latest_new': '최신 대화로 · 새 메시지 {n}개',
    'cal.title': '우리의 날들',
    'cal.together': '함께한 지 {n}일',
    'cal.together_one': '함께한 지 {n}일',
    'cal.summary': '{date}부터 {n}일째.',
    'cal.days_milestone': '{n}일',
    'cal.years_milestone': '{n}주년',
    'cal.year_one': '1주년',
    'cal.start': '우리의 첫날',
    'cal.zone': '우리의 날짜는 {zone} 기준이에요.',
    'cal.use_zone': '{zone}로 바꾸기',
    'cal.save': '저장',
    'cal.saved': '저장했어요.',
    'cal.add': '우리만의 날 추가',
    'cal.own_title': '이름',
    'cal.own_date': '날짜',
    'cal.yearly': '매년',
    'cal.add_button': '추가',
    'cal.remove': '이 날 지우기',
    'words.title': '우리의 단어',
    'words.counts': '나 {mine} · {name} {partner}',
    'words.exclude': '빼기',
    'words.include': '다시 넣기',
    'words.excluded': '뺀 단어',
    'words.empty': '아직 단어가 없어요. 먼저 대화를 나눠 보세요.',
    'words.counting': '긴 대화를 아직 세는 중이에요…',
    'menu.more': '더 보기',
    'menu.breakup': '헤어지기',
    'menu.logout': '로그아웃',
    'menu.password': '비밀번호 바꾸기',

    'password.title': '비밀번호 바꾸기',
    'password.old': '현재 비밀번호',
    'password.new': '새 비밀번호',
    'password.others_note': '다른 기기에서는 로그아웃돼요.',
    'password.submit': '비밀번호 바꾸기',
    'password.changed': '비밀번호를 바꿨어요. 다른 기기에서는 로그아웃됐어요.',
    'password.wrong_old': '현재 비밀번호가 맞지 않아요.',

    'breakup.confirm': 'Duet을 끝낼까요? 유예 기간이 지나면 대화, 파일, 답변이 모두 삭제돼요. 그 전까지는 되돌릴 수 있어요.',
    'breakup.ok': '헤어지기',
    'breakup.banner': '이 Duet은 {date}에 삭제돼요.',
    'breakup.restore': '되돌리기',
    'breakup.restored': '다시 함께예요. 아무것도 삭제되지 않았어요.',

    'q.title': '두 사람에게 온 질문',
    'q.lead': '답해야 대화를 이어갈 수 있어요. 상대도 답하면 서로의 답을 볼 수 있어요.',
    'q.answer': '나의 답',
    'q.submit': '답하기',
    'q.sending': '보내는 중…',
    'q.unknown': '먼저 질문에 답해 주세요.',
    'q.answered_both': '둘 다 답했어요',
    'q.answered_me': '내가 답했어요',
    'q.answered_partner': '{name}님이 답했어요',
    'q.waiting': '답을 기다리는 중',

    'answers.title': '우리의 답',
    'answers.close': '닫기',
    'answers.me': '나',
    'answers.partner': '{name}',
    'answers.hidden': '내가 먼저 답하면 {name}님의 답을 볼 수 있어요.',
    'answers.waiting': '{name}님의 답을 기다리는 중…',
    'answers.not_yet': '아직 답하지 않았어요',
    'answers.empty': '아직 질문이 없어요. 대화하다 보면 나타나요.',
    'answers.unavailable': '답변 기능은 아직 준비 중이에요.',
    'answers.loading': '불러오는 중…',

    'dialog.cancel': '취소',
    'dialog.ok': '확인',

    'file.too_large': '파일이 너무 커요 (최대 20 MiB).',
    'file.unavailable': '파일 보내기는 아직 준비 중이에요.',
    'file.failed': '올리지 못했어요.',

    'err.invalid_input': '입력한 내용을 확인해 주세요.',
    'err.unauthenticated': '다시 로그인해 주세요.',
    'err.invalid_credentials': '아이디 또는 비밀번호가 맞지 않아요.',
    'err.forbidden_origin': '이 페이지에서는 서버에 요청할 수 없어요.',
    'err.not_found': '찾을 수 없어요.',
    'err.not_found_user': '그 아이디를 쓰는 사람이 없어요.',
    'err.username_taken': '이미 쓰고 있는 아이디예요. 다른 아이디를 골라 주세요.',
    'err.already_paired': '두 사람 중 한 명이 이미 다른 Duet에 있어요.',
    'err.not_paired': '아직 연결된 짝이 없어요.',
    'err.duplicate_request': '두 사람 사이에 이미 요청이 있어요.',
    'err.too_large': '너무 커요.',
    'err.too_long': '메시지가 너무 길어요 (최대 4000자).',
    'err.rate_limited': '조금 천천히 다시 시도해 주세요.',
    'err.unavailable': '서버가 바빠요. 잠시 후 다시 시도해 주세요.',
    'err.internal': '서버에 문제가 생겼어요.',
    'err.answer_required': '먼저 질문에 답해 주세요.',
    'err.forbidden': '그렇게 할 수 없어요.',
    'err.network': '네트워크에 문제가 있어요. 연결을 확인해 주세요.',
    'err.unknown': '문제가 생겼어요.',
    'err.self': '나 자신과는 연결할 수 없어요.',
    'err.username_rule': '아이디는 3~32자의 글자, 숫자, _ . - 만 쓸 수 있어요.',
    'err.password_rule': '비밀번호는 8~128자여야 해요.',
    'err.delete_failed': '메시지를 삭제하지 못했어요.',
    'err.not_implemented': '아직 준비 중인 기능이에요.',
  },
};

export const LANGS = Object.keys(STRINGS);

function detect() {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored && STRINGS[stored]) return stored;
  } catch {
    // Storage may be blocked (private mode): fall through to the browser's language.
  }
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  for (const pref of prefs) {
    const base = String(pref).toLowerCase().split('-')[0];
    if (STRINGS[base]) return base;
  }
  return 'en';
}

let current = detect();

export function lang() {
  return current;
}

export function setLang(next) {
  if (!STRINGS[next]) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not stored: the choice lasts for this page only.
  }
  document.documentElement.lang = next;
}

export function otherLang() {
  return current === 'ko' ? 'en' : 'ko';
}

/** The text for `key` with `{name}` placeholders filled from `params`. */
export function t(key, params) {
  const table = STRINGS[current] || STRINGS.en;
  let text = table[key] ?? STRINGS.en[key] ?? key;
  if (params) {
    text = text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  }
  return text;
}

export function has(key) {
  return key in (STRINGS[current] || STRINGS.en) || key in STRINGS.en;
}

/** Fills every element under `root` that names a key in data-i18n* attributes. */
export function applyStatic(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}
