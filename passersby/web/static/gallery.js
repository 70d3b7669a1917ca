/* passersby gallery: grid, large view, keep / reject / star / note, compare two, contact sheet,
 * export, and the faces shown recently (capture one after the fact). Writes need ?token=. */
'use strict';

(() => {
  const cfg = JSON.parse(document.getElementById('passersby-config').textContent);
  const token = new URLSearchParams(location.search).get('token') || '';
  const locked = cfg.controls === 'ok' ? ''
    : cfg.controls === 'wrong' ? 'Read only: the token in this address is not valid.'
      : 'Read only: open this page with ?token=… to keep, star, note and export.';
  const $ = (id) => document.getElementById(id);
  const note = $('note');
  let items = [];
  let filter = 'all';
  const chosen = new Set();
  let current = null; // the capture in the large view

  $('lock').textContent = locked;
  document.body.dataset.controls = locked ? 'locked' : 'enabled';
  for (const el of document.querySelectorAll('.write')) el.disabled = Boolean(locked);

  async function post(path, body) {
    try {
      const r = await fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify(body || {}),
      });
      if (r.headers.get('Content-Type')?.startsWith('application/pdf')) return { ok: r.ok, blob: await r.blob() };
      const data = await r.json().catch(() => ({}));
      return r.ok ? { ok: true, ...data } : { ok: false, error: data.error || `HTTP ${r.status}` };
    } catch (err) {
      return { ok: false, error: 'server unreachable' };
    }
  }

  function card(it) {
    const fig = document.createElement('figure');
    fig.className = 'card';
    fig.dataset.id = it.id;
    fig.dataset.status = it.status;
    const img = document.createElement('img');
    img.src = `/captures/${encodeURIComponent(it.id)}.jpg`;
    img.alt = `capture ${it.id}`;
    img.addEventListener('click', () => openLarge(it));
    const cap = document.createElement('figcaption');
    const pick = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.className = 'choose';
    box.checked = chosen.has(it.id);
    box.addEventListener('change', () => { box.checked ? chosen.add(it.id) : chosen.delete(it.id); showChosen(); });
    pick.append(box, ` ${it.screen || ''}`);
    const star = document.createElement('span');
    star.className = 'star';
    star.textContent = it.star ? '★' : '';
    cap.append(pick, star);
    fig.append(img, cap);
    return fig;
  }

  function recentCard(r) {
    const fig = document.createElement('figure');
    fig.className = 'card recent';
    fig.dataset.ledgerId = r.id;
    const img = document.createElement('img');
    img.src = `/recent/${r.id}.jpg`;
    img.alt = `face ${r.id} shown on ${r.channel}`;
    const cap = document.createElement('figcaption');
    const what = document.createElement('span');
    what.textContent = `#${r.id} ${r.channel}`;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'write capture-recent';
    button.textContent = 'Capture';
    button.disabled = Boolean(locked);
    button.addEventListener('click', async () => {
      button.disabled = true;
      note.textContent = `Capturing face #${r.id}…`;
      const res = await post(`/api/recent/${r.id}/capture`);
      button.disabled = false;
      note.textContent = res.ok ? `Captured ${res.id} (${res.quality}).` : `Capture refused: ${res.error}`;
    });
    cap.append(what, button);
    fig.append(img, cap);
    return fig;
  }

  function visible(it) {
    if (filter === 'keep' || filter === 'reject') return it.status === filter;
    if (filter === 'star') return it.star;
    return true;
  }

  async function load() {
    const grid = $('grid');
    if (filter === 'recent') {
      const r = await fetch('/api/recent?n=48').then((x) => x.json());
      grid.replaceChildren(...r.recent.map(recentCard));
      note.textContent = r.recent.length ? '' : 'Nothing shown yet (or no ledger in this home).';
      return;
    }
    const r = await fetch('/api/captures').then((x) => x.json());
    items = r.captures;
    grid.replaceChildren(...items.filter(visible).map(card));
    document.body.dataset.count = String(items.length);
    showChosen();
  }

  function showChosen() {
    $('compare').disabled = chosen.size !== 2;
    $('export').disabled = Boolean(locked) || chosen.size === 0;
    $('compare').textContent = `Compare 2 (${chosen.size} chosen)`;
  }

  function openLarge(it) {
    current = it;
    $('large-img').src = `/captures/${encodeURIComponent(it.id)}.png`;
    $('large-title').textContent = it.id;
    $('large-meta').textContent = [`screen ${it.screen}`, `captured ${it.captured_at}`, `${it.quality}`,
      it.where || `anchor #${it.anchor_id}`, `re-render matches the screen: ${it.matches_shown}`].join('\n');
    $('note-text').value = it.note || '';
    $('star').textContent = it.star ? '★ Starred' : '☆ Star';
    $('large').showModal();
  }

  async function mark(changes) {
    const res = await post(`/api/captures/${encodeURIComponent(current.id)}`, changes);
    if (!res.ok) { note.textContent = `Refused: ${res.error}`; return; }
    Object.assign(current, res);
    $('star').textContent = current.star ? '★ Starred' : '☆ Star';
    note.textContent = `${current.id}: ${current.status || 'unmarked'}${current.star ? ', starred' : ''}.`;
    await load();
  }

  for (const b of document.querySelectorAll('[data-set]')) b.addEventListener('click', () => mark({ status: b.dataset.set }));
  $('star').addEventListener('click', () => mark({ star: !current.star }));
  $('save-note').addEventListener('click', () => mark({ note: $('note-text').value }));
  $('close').addEventListener('click', () => $('large').close());

  $('compare').addEventListener('click', () => {
    const [a, b] = [...chosen];
    $('cmp-a').src = `/captures/${encodeURIComponent(a)}.png`;
    $('cmp-b').src = `/captures/${encodeURIComponent(b)}.png`;
    $('cmp-a-id').textContent = a;
    $('cmp-b-id').textContent = b;
    $('compare-view').showModal();
  });
  $('cmp-close').addEventListener('click', () => $('compare-view').close());

  $('sheet').addEventListener('click', async () => {
    note.textContent = 'Making the contact sheet…';
    const res = await post('/api/contact-sheet', { which: filter === 'star' ? 'star' : 'keep' });
    if (!res.ok) { note.textContent = `Contact sheet refused: ${res.error || 'no PDF'}`; return; }
    const url = URL.createObjectURL(res.blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = 'contact-sheet.pdf';
    a.textContent = 'contact-sheet.pdf';
    note.replaceChildren('Contact sheet ready: ', a);
  });

  $('export').addEventListener('click', async () => {
    note.textContent = `Exporting ${chosen.size} at ${$('export-size').value}…`;
    const res = await post('/api/export', { ids: [...chosen], size: $('export-size').value, label: true });
    note.textContent = res.ok ? `Exported ${res.exported.length}: ${res.exported.map((e) => e.pdf).join(', ')}`
      : `Export refused: ${res.error}`;
  });

  for (const b of document.querySelectorAll('[data-filter]')) {
    b.addEventListener('click', () => {
      filter = b.dataset.filter;
      for (const o of document.querySelectorAll('[data-filter]')) o.setAttribute('aria-pressed', String(o === b));
      load();
    });
  }
  load();
})();
