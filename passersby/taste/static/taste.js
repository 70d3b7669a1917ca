/* passersby taste: judge one face at a time; the next one is already decoded when you do.
 *
 * Keys: → or L like, ← or D dislike, ↑ superlike, ↓ or space skip. Touch / mouse: drag the
 * face right (like), left (dislike) or up (superlike) past 30 % of its size.
 * Rating needs the token: open the page with ?token=… (the server prints the address).
 *
 * Speed: the server keeps a few faces rendered ahead and tells the page which; the page
 * downloads and decodes them in advance, so judging shows the next face at once and stores
 * the rating in the background (POSTs go out one at a time, in the order judged).
 * After each face change: body.dataset.nextMs = milliseconds from the judgement to the
 * next face painted (body.dataset.nextMsAll keeps the last 50). body.dataset.ready is 'true'
 * while the face on the card can be judged (keys pressed before the next face is painted are
 * ignored, so nobody rates a face they have not seen). body.dataset.nextReady is 'true' while
 * the face a judgement would show next is already downloaded; body.dataset.nextFromAll says,
 * per judgement, where the next face came from (p preloaded, l loading, s the server).
 */
'use strict';

(() => {
  const cfg = JSON.parse(document.getElementById('passersby-config').textContent);
  const token = new URLSearchParams(location.search).get('token') || '';
  const KEYS = {
    ArrowRight: 'like', l: 'like', ArrowLeft: 'dislike', d: 'dislike',
    ArrowUp: 'superlike', ArrowDown: 'skip', ' ': 'skip',
  };
  const SWIPE = 0.3; // share of the card's size a drag must pass to count
  const GALLERY_EVERY = 5; // ratings between gallery refreshes

  const body = document.body;
  const card = document.getElementById('card');
  const img = document.getElementById('face');
  const deckEl = document.getElementById('deck');
  const note = document.getElementById('note');
  const buttons = document.querySelectorAll('.actions button');
  const exportButton = document.getElementById('export');

  const locked = cfg.auth === 'ok' ? ''
    : cfg.auth === 'wrong' ? 'Rating locked: the token in this address is not valid.'
      : 'Rating locked: open this page with ?token=… (the server prints the address).';

  const loaded = new Map(); // face id -> {face, url, probe, ready}
  const rated = new Set(); // ids judged here, so a late server answer never brings one back
  let current = null; // the face on the card (or being put there)
  let ready = false; // whether it is painted and can be judged
  let upcoming = []; // faces after it, in the server's order
  let posting = Promise.resolve(); // the chain of rating POSTs
  let sinceGallery = 0;
  const timings = [];
  const froms = [];

  // ---- helpers -----------------------------------------------------------------------------

  function say(text) { note.textContent = text; }

  function nextPaint() {
    return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  }

  function authHeaders(extra = {}) {
    return { ...extra, Authorization: `Bearer ${token}` };
  }

  /** The face a judgement now would show, and its preload entry (if any). */
  function nextUp() {
    const next = upcoming.find((f) => !rated.has(f.id));
    return { next, entry: next && loaded.get(next.id) };
  }

  /** Say (for tests and diagnosis) whether the next face is downloaded already. */
  function markNext() {
    const { entry } = nextUp();
    body.dataset.nextReady = String(Boolean(entry && entry.url));
  }

  /** Download and decode a face's JPEG once; resolves to its entry. */
  function preload(face) {
    let entry = loaded.get(face.id);
    if (entry) return entry.ready;
    entry = { face, url: null, probe: null };
    entry.ready = fetch(face.image, { cache: 'no-store' })
      .then((r) => { if (!r.ok) throw new Error(`face image: HTTP ${r.status}`); return r.blob(); })
      .then(async (blob) => {
        entry.url = URL.createObjectURL(blob);
        markNext();
        // Keep the decoded probe alive: the visible <img> then paints from the decoded copy.
        entry.probe = new Image();
        entry.probe.src = entry.url;
        await entry.probe.decode();
        return entry;
      });
    entry.ready.catch(() => forget(face.id));
    loaded.set(face.id, entry);
    return entry.ready;
  }

  function forget(id) {
    const entry = loaded.get(id);
    if (entry && entry.url) URL.revokeObjectURL(entry.url);
    loaded.delete(id);
  }

  /** Take the server's view of what comes next (minus what is on screen or judged here). */
  function adopt(faces) {
    upcoming = faces.filter((f) => f && !rated.has(f.id) && (!current || f.id !== current.id));
    upcoming.forEach((f) => preload(f).catch(() => {}));
    markNext();
  }

  // ---- showing faces -----------------------------------------------------------------------

  /** Put `face` on the card; with t0, record how long since the judgement it was painted. */
  async function show(face, t0) {
    current = face;
    ready = false;
    upcoming = upcoming.filter((f) => f.id !== face.id);
    markNext();
    let entry;
    try {
      entry = await preload(face);
    } catch (err) {
      say('Cannot load the next face – fetching another.');
      resync();
      return;
    }
    if (current !== face) return; // overtaken (a resync)
    img.src = entry.url;
    img.dataset.faceId = face.id;
    card.dataset.state = 'ready';
    await img.decode().catch(() => {});
    await nextPaint();
    if (t0 !== undefined) {
      const ms = performance.now() - t0;
      timings.push(ms.toFixed(1));
      if (timings.length > 50) timings.shift();
      body.dataset.nextMs = ms.toFixed(1);
      body.dataset.nextMsAll = timings.join(',');
    }
    ready = current === face;
    if (ready) body.dataset.ready = 'true';
  }

  /** Ask the server for the face to judge now (at load, and when our idea of it went stale). */
  async function resync() {
    try {
      const r = await fetch('/api/face', { cache: 'no-store' });
      const data = await r.json();
      if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
      showProgress(data.progress);
      adopt([data.face, ...data.queue]);
      await show(data.face);
    } catch (err) {
      say(`No face to show: ${err.message} – retrying.`);
      setTimeout(resync, 2000);
    }
  }

  // ---- judging -----------------------------------------------------------------------------

  function judge(rating, drag = null) {
    if (locked) { say(locked); snapBack(); return; }
    if (!current || !ready) return; // the next face is still on its way
    const t0 = performance.now();
    const face = current;
    ready = false;
    body.dataset.ready = 'false'; // judgements until the next face is painted are ignored
    rated.add(face.id);
    flyOff(rating, drag);
    const sent = post(face, rating);
    const { next, entry } = nextUp();
    // Where the next face came from, for diagnosis: decoded ahead, still loading, or the server.
    body.dataset.nextFrom = !next ? 'server' : entry && entry.url ? 'preloaded' : 'loading';
    froms.push(body.dataset.nextFrom[0]);
    body.dataset.nextFromAll = froms.slice(-50).join('');
    if (next) {
      show(next, t0);
    } else {
      current = null;
      card.dataset.state = 'loading';
      sent.then((reply) => (reply ? show(reply.face, t0) : resync()));
    }
  }

  /** POST the rating after the ones before it; resolves to the server's reply or null. */
  function post(face, rating) {
    const done = posting.then(async () => {
      let response;
      try {
        response = await fetch('/api/rate', {
          method: 'POST',
          headers: authHeaders({ 'Content-Type': 'application/json' }),
          body: JSON.stringify({ face: face.id, rating }),
        });
      } catch (err) {
        say('Server unreachable: that rating was not stored.');
        return null;
      }
      const reply = await response.json().catch(() => ({}));
      if (!response.ok) {
        say(`Rating not stored: ${reply.error || `HTTP ${response.status}`}`);
        return null;
      }
      say('');
      body.dataset.stored = String(Number(body.dataset.stored || 0) + 1);
      adopt([reply.face, ...reply.queue]);
      showProgress(reply.progress);
      sinceGallery += 1;
      if (sinceGallery >= GALLERY_EVERY) refreshGallery();
      return reply;
    });
    posting = done.catch(() => null);
    setTimeout(() => forget(face.id), 1000); // after the fly-off has used its picture
    return done;
  }

  /** A copy of the judged face flies off while the next one is already underneath. */
  function flyOff(rating, drag) {
    const ghost = document.createElement('div');
    ghost.className = 'ghost';
    const copy = document.createElement('img');
    copy.src = img.src;
    copy.alt = '';
    ghost.append(copy);
    if (drag) ghost.style.transform = card.style.transform;
    deckEl.append(ghost);
    resetCard();
    requestAnimationFrame(() => requestAnimationFrame(() => ghost.classList.add(`fly-${rating}`)));
    setTimeout(() => ghost.remove(), 400);
  }

  // ---- pointer swipes ----------------------------------------------------------------------

  let drag = null;

  function resetCard() {
    card.classList.remove('dragging');
    card.style.transform = '';
    for (const stamp of card.querySelectorAll('.stamp')) stamp.style.opacity = 0;
  }

  function snapBack() { drag = null; resetCard(); }

  card.addEventListener('pointerdown', (event) => {
    if (!current || !ready || event.button > 0) return;
    if (locked) { say(locked); return; }
    drag = { x: event.clientX, y: event.clientY, dx: 0, dy: 0 };
    card.setPointerCapture(event.pointerId);
    card.classList.add('dragging');
  });

  card.addEventListener('pointermove', (event) => {
    if (!drag) return;
    drag.dx = event.clientX - drag.x;
    drag.dy = event.clientY - drag.y;
    card.style.transform = `translate(${drag.dx}px, ${drag.dy}px) rotate(${drag.dx / 24}deg)`;
    const w = card.clientWidth * SWIPE;
    const h = card.clientHeight * SWIPE;
    card.querySelector('.stamp-like').style.opacity = Math.max(0, Math.min(1, drag.dx / w));
    card.querySelector('.stamp-dislike').style.opacity = Math.max(0, Math.min(1, -drag.dx / w));
    card.querySelector('.stamp-superlike').style.opacity = Math.max(0, Math.min(1, -drag.dy / h));
  });

  card.addEventListener('pointerup', () => {
    if (!drag) return;
    const { dx, dy } = drag;
    const w = card.clientWidth * SWIPE;
    const h = card.clientHeight * SWIPE;
    let rating = null;
    if (Math.abs(dx) >= w && Math.abs(dx) >= Math.abs(dy)) rating = dx > 0 ? 'like' : 'dislike';
    else if (-dy >= h) rating = 'superlike';
    const was = drag;
    drag = null;
    if (rating) judge(rating, was); else resetCard();
  });

  card.addEventListener('pointercancel', snapBack);

  // ---- keys and buttons --------------------------------------------------------------------

  document.addEventListener('keydown', (event) => {
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const rating = KEYS[key];
    if (!rating) return;
    event.preventDefault(); // no scrolling, no click on a focused button
    judge(rating);
  });

  for (const button of buttons) {
    button.disabled = Boolean(locked);
    button.addEventListener('click', () => judge(button.dataset.rating));
  }

  // ---- progress and gallery ----------------------------------------------------------------

  function showProgress(p) {
    if (!p) return;
    const b = p.by_rating || {};
    const parts = [`${p.rated} rated`, `♥ ${(b.like || 0) + (b.superlike || 0)}`, `✕ ${b.dislike || 0}`];
    if (typeof p.accuracy === 'number') parts.push(`accuracy ${Math.round(p.accuracy * 100)} %`);
    if (typeof p.auc === 'number') parts.push(`AUC ${p.auc.toFixed(2)}`);
    if (p.n_eval) parts.push(`(last ${p.n_eval})`);
    document.getElementById('progress').textContent = parts.join(' · ');
    body.dataset.rated = String(p.rated);
  }

  async function refreshProgress() {
    try {
      const r = await fetch('/api/progress', { cache: 'no-store' });
      if (r.ok) showProgress(await r.json());
    } catch (err) { /* the server is away; the next poll tries again */ }
  }

  function thumb(item) {
    const figure = document.createElement('figure');
    const pic = document.createElement('img');
    pic.src = item.image;
    pic.alt = `P(like) ${Math.round(item.p * 100)} %`;
    const caption = document.createElement('figcaption');
    caption.textContent = `${Math.round(item.p * 100)} %`;
    figure.append(pic, caption);
    return figure;
  }

  async function refreshGallery() {
    sinceGallery = 0;
    try {
      const r = await fetch('/api/gallery', { cache: 'no-store' });
      if (!r.ok) return;
      const g = await r.json();
      document.getElementById('gallery-note').hidden = g.ready;
      document.getElementById('liked').replaceChildren(...g.liked.map(thumb));
      document.getElementById('disliked').replaceChildren(...g.disliked.map(thumb));
      body.dataset.galleryVersion = String(g.version);
    } catch (err) { /* keep the old gallery */ }
  }

  async function exportRatings() {
    try {
      const r = await fetch('/api/export', { headers: authHeaders(), cache: 'no-store' });
      if (!r.ok) throw new Error(((await r.json().catch(() => ({}))).error) || `HTTP ${r.status}`);
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `taste-${cfg.curator.replace(/[^A-Za-z0-9._-]+/g, '_')}.json`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      say(`Export failed: ${err.message}`);
    }
  }

  // ---- start -------------------------------------------------------------------------------

  document.getElementById('curator').textContent = cfg.curator;
  document.getElementById('label').textContent = cfg.label === 'any' ? '' : `· ${cfg.label} faces`;
  exportButton.disabled = Boolean(locked);
  exportButton.addEventListener('click', exportRatings);
  body.dataset.auth = cfg.auth;
  say(locked);
  resync();
  refreshGallery();
  setInterval(refreshProgress, 3000);
})();
