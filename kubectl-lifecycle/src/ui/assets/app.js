// lifecycle-jobs web view: live regions, actions without leaving the page,
// a run's log as it is written. Pages work without it (forms post, links
// navigate); with it nothing reloads. Text from the server is only ever set
// with textContent; the live region is HTML the view rendered and escaped.
(() => {
  'use strict';
  const body = document.body;
  const live = document.getElementById('live');
  const log = document.getElementById('log');

  function liveState(state) {
    body.dataset.liveState = state;
    const el = document.getElementById('live-state');
    if (el) {
      el.textContent = state === 'open' ? 'live' : state;
      el.className = 'live-state ' + state;
    }
  }

  // --- the live region ---
  if (live && live.dataset.live) {
    liveState('connecting');
    const source = new EventSource(live.dataset.live);
    source.addEventListener('open', () => {
      liveState('open');
      body.dataset.ready = '1';
    });
    source.addEventListener('error', () => {
      liveState(source.readyState === EventSource.CLOSED ? 'closed' : 'connecting');
    });
    source.addEventListener('main', (ev) => {
      live.innerHTML = ev.data;
      followLatest();
    });
  } else {
    liveState('closed');
  }

  // --- filters apply as they change ---
  const filters = document.getElementById('filters');
  if (filters) {
    filters.addEventListener('change', () => filters.requestSubmit());
  }

  // --- actions: posted with fetch, their answer shown in #flash ---
  function flash(ok, message) {
    const box = document.getElementById('flash');
    if (!box) return;
    const p = document.createElement('p');
    p.className = ok ? 'ok' : 'error';
    p.textContent = message;
    box.replaceChildren(p);
  }

  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== 'post') return;
    ev.preventDefault();
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const res = await fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        headers: { 'x-lifecycle-ui': 'fetch', accept: 'application/json' },
        credentials: 'same-origin',
      });
      let out;
      try {
        out = await res.json();
      } catch (_) {
        out = { ok: false, message: 'The web view answered ' + res.status + ' ' + res.statusText };
      }
      flash(out.ok, out.message);
      if (out.ok) {
        form.reset();
        const details = form.closest('details');
        if (details) details.open = false;
      }
    } catch (e) {
      flash(false, 'The web view did not answer (is `kubectl lifecycle ui` still running?): ' + e);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  // --- a run's log ---
  let logSource = null;

  function logPre(container) {
    const holder = log.querySelector('.logs');
    let pre = holder.querySelector('pre.log[data-container="' + CSS.escape(container) + '"]');
    if (!pre) {
      const h = document.createElement('h3');
      h.className = 'container';
      h.textContent = container === 'lifecycle-agent' ? 'lifecycle-agent (output capture)' : 'container ' + container;
      pre = document.createElement('pre');
      pre.className = 'log';
      pre.dataset.container = container;
      pre.tabIndex = 0;
      holder.append(h, pre);
    }
    return pre;
  }

  function note(text) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = text;
    log.querySelector('.logs').append(p);
  }

  function followLog(run, src) {
    if (!log) return;
    if (logSource) logSource.close();
    log.dataset.run = run;
    log.dataset.src = src;
    log.dataset.state = 'streaming';
    log.querySelector('.logs').replaceChildren();
    const empty = document.getElementById('log-empty');
    if (empty) empty.remove();
    let label = document.getElementById('log-run');
    if (!label) {
      const h = document.getElementById('log-h');
      const span = document.createElement('span');
      span.className = 'muted';
      span.append(' of ');
      label = document.createElement('code');
      label.id = 'log-run';
      span.append(label);
      h.append(span);
    }
    label.textContent = run;
    const source = new EventSource(src);
    logSource = source;
    source.addEventListener('line', (ev) => {
      const line = JSON.parse(ev.data);
      const pre = logPre(line.c);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.append(document.createTextNode(line.t + '\n'));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener('note', (ev) => note(ev.data));
    // One line per container that has not started, replaced as its reason changes, gone once it starts.
    source.addEventListener('waiting', (ev) => {
      const w = JSON.parse(ev.data);
      const holder = log.querySelector('.logs');
      let p = holder.querySelector('p.waiting[data-container="' + CSS.escape(w.c) + '"]');
      if (!p) {
        p = document.createElement('p');
        p.className = 'note waiting';
        p.dataset.container = w.c;
        holder.append(p);
      }
      p.textContent = 'container ' + w.c + ' has not started: ' + w.why;
    });
    source.addEventListener('started', (ev) => {
      const p = log.querySelector('p.waiting[data-container="' + CSS.escape(ev.data) + '"]');
      if (p) p.remove();
    });
    source.addEventListener('end', () => {
      source.close();
      log.dataset.state = 'ended';
    });
    source.addEventListener('error', () => {
      // The server sends a log once; a reconnect would send it again.
      source.close();
      if (log.dataset.state !== 'ended') {
        log.dataset.state = 'ended';
        note('log stream interrupted: reload the page to follow it again');
      }
    });
  }

  // A page that is not pinned to a run follows the newest one.
  function followLatest() {
    if (!log || log.dataset.follow !== 'latest' || !live) return;
    const holder = live.querySelector('[data-latest-run]');
    const latest = holder && holder.dataset.latestRun;
    if (latest && latest !== log.dataset.run) {
      followLog(latest, '/logs/' + encodeURIComponent(log.dataset.ns) + '/' + encodeURIComponent(latest));
    }
  }

  if (log && log.dataset.run && log.dataset.src) {
    followLog(log.dataset.run, log.dataset.src);
  }
})();
