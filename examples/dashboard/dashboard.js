// A live view of one project's updates and of the connection, on the ws-server client.
// Parameters (fragment or query): endpoint (the /ws URL), token (a JWT), project.
import { WsClient } from '../../clients/js/src/index.js';

const params = new URLSearchParams(location.hash.slice(1) || location.search);
const endpoint = params.get('endpoint');
const token = params.get('token');
const projectId = params.get('project') || params.get('project_id');
const $ = (id) => document.getElementById(id);
const MAX_ROWS = 2000; // the page keeps this many rows; the counters count everything
const LOG_LINES = 12;

if (!endpoint || !projectId) {
  $('setup').hidden = false;
} else {
  $('endpoint').textContent = endpoint;
  $('project').textContent = projectId;
  const client = new WsClient({ url: endpoint, getToken: token ? () => token : undefined });
  let count = 0;

  const show = () => {
    const at = client.position(projectId);
    $('position').textContent = at ? `offset ${at.offset}, epoch ${at.epoch}` : '-';
    $('count').textContent = String(count);
    $('replayed').textContent = String(client.stats.replayed);
    $('duplicates').textContent = String(client.stats.duplicatesDropped);
    $('reconnects').textContent = String(client.stats.reconnects);
    $('resets').textContent = String(client.stats.resets);
  };
  const row = (text, attrs = {}, offset) => {
    const li = document.createElement('li');
    if (offset !== undefined) {
      const at = document.createElement('span');
      at.className = 'offset';
      at.textContent = `#${offset}`;
      li.append(at, ' ');
    }
    li.append(text);
    for (const [k, v] of Object.entries(attrs)) li.setAttribute(k, v);
    const list = $('updates');
    list.append(li);
    if (list.children.length > MAX_ROWS) list.firstElementChild.remove();
  };
  const log = (text) => {
    const li = document.createElement('li');
    li.textContent = `${new Date().toISOString().slice(11, 23)} ${text}`;
    $('log').append(li);
    if ($('log').children.length > LOG_LINES) $('log').firstElementChild.remove();
  };
  const notice = (text) => {
    $('notice').textContent = text;
    $('notice').hidden = !text;
  };

  client.on('state', ({ state, delayMs, reason, code }) => {
    if (delayMs !== undefined) log(`lost (${code}${reason ? ` ${reason}` : ''}); reconnecting in ${delayMs} ms`);
    else log(state);
    $('state').dataset.state = state;
    $('state').textContent = state === 'reconnecting' && delayMs !== undefined ? `reconnecting in ${delayMs} ms` : state;
    if (state === 'closed' && reason) notice(`closed: ${reason}`);
    else if (state === 'open') notice('');
    show();
  });
  client.on('authenticated', (reply) => {
    $('user').textContent = reply.user_id ?? '-';
  });
  client.on('error', (err) => notice(`${err.code}: ${err.message}`));
  client.on('frame', (frame) => {
    if (frame.type === 'subscribed' && frame.recovered !== undefined) {
      log(`resubscribed: top offset ${frame.offset}, recovered ${frame.recovered}`);
    } else if (frame.type === 'reconnect') {
      log(`server asks to reconnect (${frame.reason}) within ${frame.jitter_ms} ms`);
    }
  });
  client.subscribe(projectId, {
    onUpdate(data, { offset }) {
      count++;
      row(JSON.stringify(data), { 'data-offset': String(offset ?? ''), 'data-json': JSON.stringify(data) }, offset ?? '');
      show();
    },
    onReset(_, { reason, position }) {
      // a real app reloads the project's state from its backend here
      row(`history lost (${reason}): reload; continuing from offset ${position.offset}`, { class: 'reset' });
      notice('Some updates could not be replayed: reload the project from the backend.');
      show();
    },
  });
  client.connect();
  // for operators poking at it from the console (and the browser test)
  window.dashboard = { client, projectId };
}
