/**
 * ui.js — small DOM helpers shared by the demo pages (no server access:
 * every page talks to holdfast only through holdfast.js).
 * @module ui
 */

/** querySelector shorthand. @param {string} sel @param {ParentNode} [root] @returns {HTMLElement} */
export const $ = (sel, root = document) => root.querySelector(sel);

/**
 * Builds an element. Text children are text nodes (never parsed as HTML),
 * so names typed by users are safe to show.
 * @param {string} tag e.g. `li.ticket` (classes after dots)
 * @param {object|null} [attrs] attributes; `on*` functions become listeners; `dataset` an object
 * @param {...(Node|string|number|null|false|Array)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. @param {Element} el @param {...*} children */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A URL query parameter. @param {string} name @param {string} [dflt] @returns {string} */
export function param(name, dflt = '') {
  const v = new URLSearchParams(location.search).get(name);
  return v == null || v === '' ? dflt : v;
}

/**
 * Keeps `el` showing a client's connection state (live / reconnecting /
 * polling / closed); the element gets data-state and data-transport.
 * @param {import('./holdfast.js').Client} client @param {HTMLElement} el
 */
export function connectionBadge(client, el) {
  let timer = 0;
  client.onState((state, info) => {
    clearInterval(timer);
    el.dataset.state = state;
    el.dataset.transport = info.transport || '';
    const show = () => {
      let text = state;
      if (state === 'open') text = info.transport === 'poll' ? 'live (polling)' : 'live';
      else if (state === 'reconnecting' || state === 'connecting') {
        text = state === 'connecting' ? 'connecting…' : 'reconnecting…';
        if (info.delay && until > Date.now()) text += ` retry in ${Math.ceil((until - Date.now()) / 1000)}s`;
      }
      el.textContent = text;
    };
    const until = Date.now() + (info.delay || 0);
    show();
    if (info.delay) timer = setInterval(show, 500);
    el.title = info.reason || '';
  });
}

/** Shows a short message at the bottom. @param {string} msg @param {'ok'|'bad'} [kind] */
export function toast(msg, kind = 'ok') {
  let box = document.getElementById('toasts');
  if (!box) { box = h('div', { id: 'toasts', role: 'status' }); document.body.append(box); }
  const t = h('div.toast', { class: kind === 'bad' ? 'bad' : '' }, msg);
  box.append(t);
  while (box.children.length > 2) box.firstChild.remove(); // the newest two
  setTimeout(() => t.remove(), kind === 'bad' ? 5000 : 2500);
}

/**
 * The user's display name: remembered in localStorage, asked for with a
 * small dialog the first time (or when `force`).
 * @param {{force?: boolean, title?: string}} [opts]
 * @returns {Promise<string>}
 */
export function askName(opts = {}) {
  const saved = localStorage.getItem('holdfast.name');
  if (saved && !opts.force) return Promise.resolve(saved);
  return new Promise((resolve) => {
    const input = h('input', { name: 'name', required: true, maxlength: 40, autocomplete: 'name', value: saved || '', placeholder: 'e.g. Kim' });
    const dlg = h('dialog', { id: 'name-dialog' },
      h('form', { method: 'dialog' },
        h('h2', null, opts.title || 'What is your name?'),
        h('p.muted.small', null, 'Shown to others on this demo; remembered on this device.'),
        input,
        h('button.primary.big', { type: 'submit' }, 'Continue')));
    dlg.addEventListener('close', () => {
      const name = input.value.trim().slice(0, 40) || saved || 'Guest';
      localStorage.setItem('holdfast.name', name);
      dlg.remove();
      resolve(name);
    });
    dlg.addEventListener('cancel', (e) => { if (!saved) e.preventDefault(); });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}

/**
 * A name made fit for an actor name or user id (`A-Z a-z 0-9 . _ : @ -`):
 * "Kim Min-ji" → "kim-min-ji". Letters outside ASCII become their code.
 * @param {string} name @returns {string}
 */
export function slug(name) {
  const s = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9._@-]+/g, (m) => (/^\s+$/.test(m) ? '-' : [...m].map((c) => 'u' + c.codePointAt(0).toString(36)).join('')))
    .replace(/-+/g, '-').replace(/^-|-$/g, '').slice(0, 64);
  return s || 'guest';
}

/** "14:05" from ms since the epoch. @param {number} ms @returns {string} */
export const hhmm = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/**
 * "14:05" (24-hour) at a fixed offset from UTC, whatever the browser's
 * own zone: a store's local time (`utc_offset_min`, docs/kinds/store.md).
 * @param {number} ms since the epoch @param {number} offsetMin minutes east of UTC
 * @returns {string}
 */
export const hhmmAt = (ms, offsetMin = 0) => new Date(ms + offsetMin * 60000).toISOString().slice(11, 16);

/** "UTC+09:00", "UTC-03:30" from minutes east of UTC. @param {number} min @returns {string} */
export function utcOffsetLabel(min) {
  const a = Math.abs(min), two = (n) => String(n).padStart(2, '0');
  return `UTC${min < 0 ? '-' : '+'}${two(Math.floor(a / 60))}:${two(a % 60)}`;
}

/** "3 min ago" from ms since the epoch. @param {number} ms @returns {string} */
export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** Keeps `el` showing the time of day. @param {HTMLElement} el */
export function clock(el) {
  const tick = () => { el.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }); };
  tick();
  setInterval(tick, 5000);
}

/** English ordinal: 1st, 2nd, 3rd, 11th. @param {number} n */
export function ordinal(n) {
  const s = ['th', 'st', 'nd', 'rd'], v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
}

/** The common page header: back link, title, connection badge. */
export function header(client, title, ...extra) {
  const badge = h('span.conn', { id: 'conn' }, 'connecting…');
  const bar = h('header.bar', null, h('a.home', { href: '/', title: 'all demos' }, '◆ holdfast'), h('h1', null, title), ...extra, badge);
  document.body.prepend(bar);
  connectionBadge(client, badge);
  return bar;
}

/**
 * Options for connect() from the page's URL: `?token=JWT` (kept for the
 * tab's session, for servers with auth on) and `?transport=poll|ws|auto`
 * (`poll` shows the HTTP fallback by hand).
 * @returns {import('./holdfast.js').ConnectOptions}
 */
export function connectOptions() {
  const token = param('token') || sessionStorage.getItem('holdfast.token') || undefined;
  if (param('token')) sessionStorage.setItem('holdfast.token', token);
  const o = { token };
  const t = param('transport');
  if (t === 'poll' || t === 'ws' || t === 'auto') o.transport = t;
  return o;
}

/**
 * The claims of the page's token (`sub`, `role`, `name`, `picture`…), read
 * without checking it (the server checks it; this only decides what the
 * page shows and sends). `{}` when there is no token: auth is off and
 * callers are anonymous.
 * @returns {Record<string, any>}
 */
export function tokenClaims() {
  const t = connectOptions().token;
  if (!t) return {};
  try {
    const b64 = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), '=')), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : {};
  } catch (_) {
    return {};
  }
}

/** The subject (`sub`) of the page's token; empty without one. @returns {string} */
export function tokenSubject() {
  const sub = tokenClaims().sub;
  return typeof sub === 'string' ? sub : '';
}
