// Console entry point: sign in with a key (kept in sessionStorage), then hash-routed views.
import { ApiError, get, getKey, setKey, forgetKey } from './api.js';
import { $ } from './dom.js';
import { setupChat, stopChat } from './chat.js';
import { setupMemory, showMemory } from './memory.js';
import { setupEvents, stopEvents } from './events.js';
import { setupHealth, showHealth, hideHealth } from './health.js';
import { setupMemoryDialog } from './memory-dialog.js';

const VIEWS = ['chat', 'memory', 'events', 'health'];
let started = false;

function route() {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'chat';
  for (const view of VIEWS) {
    $(`${view}-view`).hidden = view !== name;
    const link = $(`nav-${view}`);
    if (view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (name === 'memory') showMemory();
  if (name === 'health') showHealth();
  else hideHealth();
  $(`${name}-title`).focus();
}

function start() {
  $('login-view').hidden = true;
  $('nav').hidden = false;
  $('logout').hidden = false;
  if (!started) {
    started = true;
    setupMemoryDialog();
    setupChat();
    setupMemory();
    setupEvents();
    setupHealth();
    window.addEventListener('hashchange', route);
  }
  route();
}

function showLogin(message = '') {
  $('login-view').hidden = false;
  for (const view of VIEWS) $(`${view}-view`).hidden = true;
  $('nav').hidden = true;
  $('logout').hidden = true;
  $('login-error').textContent = message;
  $('login-key').focus();
}

async function login(event) {
  event.preventDefault();
  const key = $('login-key').value.trim();
  setKey(key);
  try {
    await get('/v1/status'); // proves the key (or that the server needs none)
  } catch (error) {
    forgetKey();
    const refused = error instanceof ApiError && error.status === 401;
    showLogin(refused ? 'That key was refused.' : `Cannot reach the API: ${error.message}`);
    return;
  }
  $('login-key').value = '';
  start();
}

function logout() {
  forgetKey();
  stopChat();
  stopEvents();
  hideHealth();
  location.hash = '';
  location.reload();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  if (getKey() !== null) start();
  else showLogin();
});
