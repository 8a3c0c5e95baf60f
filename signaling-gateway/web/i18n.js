// Salon's UI strings. French first; English as the alternative.
// Every user-visible string of the client lives here.

const DICT = {
  fr: {
    'home.intro': 'Réunions vidéo souveraines. Choisissez un nom de salon pour entrer.',
    'home.roomLabel': 'Nom du salon',
    'home.roomHelp': 'De 1 à 64 lettres sans accent, chiffres ou tirets.',
    'home.go': 'Entrer',
    'home.badRoom': 'Nom invalide : utilisez de 1 à 64 lettres sans accent, chiffres ou tirets.',
    'prejoin.title': 'Avant d’entrer',
    'prejoin.preview': 'Aperçu de votre caméra',
    'prejoin.nameLabel': 'Votre nom',
    'prejoin.join': 'Rejoindre',
    'prejoin.badName': 'Entrez un nom de 1 à 64 caractères.',
    'call.title': 'Réunion',
    'call.controls': 'Commandes de la réunion',
    'call.you': '{name} (vous)',
    'call.tile': 'Vidéo de {name}',
    'call.unknown': 'Participant {id}',
    'mic.mute': 'Couper le micro',
    'mic.unmute': 'Activer le micro',
    'cam.off': 'Couper la caméra',
    'cam.on': 'Activer la caméra',
    'leave': 'Quitter',
    'left.message': 'Vous avez quitté le salon.',
    'left.home': 'Retour à l’accueil',
    'status.idle': 'Hors ligne',
    'status.connecting': 'Connexion…',
    'status.joined': 'Connecté au salon, média en cours de connexion…',
    'status.media': 'Connecté',
    'status.disconnected': 'Déconnecté',
    'status.left': 'Vous avez quitté le salon',
    'media.denied': 'Caméra ou micro indisponible : vous pouvez rejoindre sans eux.',
    'error.generic': 'Erreur : {message}',
    'error.bad-room': 'Nom de salon invalide.',
    'error.bad-name': 'Nom invalide.',
    'error.already-joined': 'Déjà dans un salon.',
    'error.not-joined': 'Pas encore dans un salon.',
    'error.media': 'Erreur média : {message}',
    'error.webrtc': 'Erreur WebRTC : {message}',
  },
  en: {
    'home.intro': 'Sovereign video meetings. Choose a room name to enter.',
    'home.roomLabel': 'Room name',
    'home.roomHelp': '1 to 64 letters without accents, digits or dashes.',
    'home.go': 'Enter',
    'home.badRoom': 'Invalid name: use 1 to 64 letters without accents, digits or dashes.',
    'prejoin.title': 'Before you join',
    'prejoin.preview': 'Your camera preview',
    'prejoin.nameLabel': 'Your name',
    'prejoin.join': 'Join',
    'prejoin.badName': 'Enter a name of 1 to 64 characters.',
    'call.title': 'Meeting',
    'call.controls': 'Meeting controls',
    'call.you': '{name} (you)',
    'call.tile': 'Video of {name}',
    'call.unknown': 'Participant {id}',
    'mic.mute': 'Mute microphone',
    'mic.unmute': 'Unmute microphone',
    'cam.off': 'Turn camera off',
    'cam.on': 'Turn camera on',
    'leave': 'Leave',
    'left.message': 'You left the room.',
    'left.home': 'Back to the home page',
    'status.idle': 'Offline',
    'status.connecting': 'Connecting…',
    'status.joined': 'In the room, connecting media…',
    'status.media': 'Connected',
    'status.disconnected': 'Disconnected',
    'status.left': 'You left the room',
    'media.denied': 'Camera or microphone unavailable: you can join without them.',
    'error.generic': 'Error: {message}',
    'error.bad-room': 'Invalid room name.',
    'error.bad-name': 'Invalid name.',
    'error.already-joined': 'Already in a room.',
    'error.not-joined': 'Not in a room yet.',
    'error.media': 'Media error: {message}',
    'error.webrtc': 'WebRTC error: {message}',
  },
};

function pickLang() {
  const forced = new URLSearchParams(location.search).get('lang');
  if (forced && forced in DICT) return forced;
  const nav = (navigator.language || 'fr').toLowerCase();
  if (nav.startsWith('fr')) return 'fr';
  if (nav.startsWith('en')) return 'en';
  return 'fr';
}

export const lang = pickLang();

/** Translates `key`, replacing `{var}` with `vars.var`. */
export function t(key, vars = {}) {
  const s = DICT[lang][key] ?? DICT.fr[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

/** Has a translation for `key`. */
export function has(key) {
  return key in DICT[lang];
}

/** Fills `[data-i18n]` (text) and `[data-i18n-aria]` (aria-label) under root. */
export function applyI18n(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
}
