/* passersby kiosk: the overview - every screen live, the status table, the controls. */
'use strict';

(() => {
  const cfg = Passersby.config();
  const query = Passersby.token() ? `?token=${encodeURIComponent(Passersby.token())}` : '';

  // Labels for the status keys the engine is known to report; others are derived from the key.
  const LABELS = {
    model: 'Model',
    fps: 'Frames per second',
    faces_shown: 'Faces shown',
    ledger_size: 'Ledger size',
    ledger: 'Ledger',
    uptime: 'Uptime',
    uptime_s: 'Uptime',
    paused: 'Paused',
    screens: 'Screens',
    resolution: 'Resolution',
    device: 'Device',
    walk: 'Walk',
    seed: 'Seed',
  };

  // ---- screens -----------------------------------------------------------------------------

  function tile(name) {
    const figure = document.createElement('figure');
    figure.className = 'tile';
    const link = document.createElement('a');
    link.href = `/screen/${encodeURIComponent(name)}${query}`;
    link.title = `Open “${name}” alone`;
    const img = document.createElement('img');
    img.className = 'screen';
    img.alt = `screen ${name}`;
    img.dataset.screen = name;
    link.append(img);
    const caption = document.createElement('figcaption');
    const title = document.createElement('span');
    title.className = 'name';
    title.textContent = name;
    const fps = document.createElement('span');
    fps.className = 'fps';
    fps.textContent = '– fps';
    const shoot = document.createElement('button');
    shoot.type = 'button';
    shoot.className = 'capture';
    shoot.dataset.screen = name;
    shoot.textContent = 'Capture';
    shoot.title = `Keep the face “${name}” shows now, re-rendered at full quality`;
    caption.append(title, fps, shoot);
    figure.append(link, caption);
    return { figure, img, fps };
  }

  const states = new Map();
  function showConnection(name, state) {
    states.set(name, state);
    const all = [...states.values()];
    const overall = all.every((s) => s === 'live') ? 'live' : all.includes('offline') ? 'offline' : 'connecting';
    const el = document.getElementById('connection');
    el.dataset.state = overall;
    el.textContent = { live: 'live', offline: 'server away – reconnecting', connecting: 'connecting' }[overall];
  }

  const screens = document.getElementById('screens');
  for (const name of cfg.screens) {
    const { figure, img, fps } = tile(name);
    screens.append(figure);
    const meter = new Passersby.FpsMeter((value) => { fps.textContent = `${value.toFixed(1)} fps`; });
    new Passersby.FrameStream(name, img, {
      onFrame: () => meter.tick(),
      onState: (state) => showConnection(name, state),
    }).start();
  }

  // ---- status ------------------------------------------------------------------------------

  function label(key) {
    if (LABELS[key]) return LABELS[key];
    const words = key.replace(/_/g, ' ').trim();
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function duration(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  }

  function format(key, value) {
    if (value === null || value === undefined) return '—';
    if (typeof value === 'boolean') return value ? 'yes' : 'no';
    if (typeof value === 'number') {
      if (key.startsWith('uptime')) return duration(value);
      if (Number.isInteger(value)) return value.toLocaleString('en');
      return value.toFixed(Math.abs(value) >= 100 ? 0 : 1);
    }
    if (Array.isArray(value)) return value.map((v) => format(key, v)).join(', ');
    if (typeof value === 'object') {
      return Object.entries(value).map(([k, v]) => `${k} ${format(k, v)}`).join(' · ');
    }
    return String(value);
  }

  function showStatus(status) {
    // "controls" is shown as sliders (below), not as a row.
    const rows = Object.entries(status).filter(([key]) => key !== 'controls').map(([key, value]) => {
      const row = document.createElement('tr');
      row.dataset.key = key;
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = label(key);
      const td = document.createElement('td');
      td.textContent = format(key, value);
      row.append(th, td);
      return row;
    });
    document.querySelector('#status tbody').replaceChildren(...rows);
  }

  let paused = null; // the engine's paused flag when its status reports one
  async function refreshStatus() {
    const note = document.getElementById('status-note');
    try {
      const status = await Passersby.fetchStatus();
      showStatus(status);
      note.textContent = '';
      if (typeof status.paused === 'boolean') {
        paused = status.paused;
        showPauseButton();
      }
      showExactingness(status.exactingness);
      showLive(status.controls);
    } catch (err) {
      note.textContent = 'Status unavailable – retrying.';
    }
  }
  refreshStatus();
  setInterval(refreshStatus, 1000);

  // ---- controls ----------------------------------------------------------------------------

  const note = document.getElementById('controls-note');
  const pauseButton = document.getElementById('pause');
  const quitButton = document.getElementById('quit');
  let localPaused = false; // used when the status has no paused flag
  let quitArmed = null;

  function showPauseButton() {
    const isPaused = paused === null ? localPaused : paused;
    pauseButton.dataset.action = isPaused ? 'resume' : 'pause';
    pauseButton.textContent = isPaused ? 'Resume' : 'Pause';
  }

  async function press(button) {
    const action = button.dataset.action;
    if (action === 'quit' && !quitArmed) {
      // Two presses to quit: a stray click must not end the installation.
      button.textContent = 'Really quit?';
      quitArmed = setTimeout(disarmQuit, 3000);
      return;
    }
    if (action === 'quit') disarmQuit();
    const result = await Passersby.sendControl(action);
    if (!result.ok) {
      note.textContent = `“${action}” refused: ${result.error}`;
      return;
    }
    note.textContent = { pause: 'Paused.', resume: 'Resumed.', next: 'Next face.', quit: 'Quitting…' }[action];
    if (action === 'pause' || action === 'resume') {
      localPaused = action === 'pause';
      if (paused !== null) paused = localPaused;
      showPauseButton();
    }
  }

  function disarmQuit() {
    clearTimeout(quitArmed);
    quitArmed = null;
    quitButton.textContent = 'Quit';
  }

  // The taste knob appears when the installation follows a curator's taste (status has it).
  const knob = document.getElementById('exactingness');
  const knobBox = document.getElementById('exactingness-control');
  const knobValue = document.getElementById('exactingness-value');
  let knobBusy = false; // the user is dragging: do not move the knob under their finger
  function showExactingness(value) {
    if (typeof value !== 'number') return;
    knobBox.hidden = false;
    if (!knobBusy) {
      knob.value = String(value);
      knobValue.textContent = value.toFixed(2);
    }
  }
  knob.addEventListener('input', () => { knobBusy = true; knobValue.textContent = Number(knob.value).toFixed(2); });
  knob.addEventListener('change', async () => {
    const result = await Passersby.sendControl('exactingness', Number(knob.value));
    knobBusy = false;
    note.textContent = result.ok ? `Exactingness ${Number(knob.value).toFixed(2)}.` : `refused: ${result.error}`;
  });

  // Live sliders: one per live control of each screen (status.controls.values), in the
  // control's slider range (status.controls.ranges; "direction/*" for every direction). A
  // change goes through POST /api/control with the token, like the buttons.
  const live = document.getElementById('live');
  const liveKnobs = new Map(); // "screen|control" -> {input, output}
  let liveBusy = null; // the knob under the user's finger: not moved by the status

  function rangeOf(ranges, name) {
    return ranges[name] || (name.startsWith('direction/') ? ranges['direction/*'] : null);
  }

  function liveKnob(screen, name, range) {
    const label = document.createElement('label');
    label.className = 'knob';
    const [lo, hi, stepSize] = range;
    const output = document.createElement('output');
    const input = document.createElement('input');
    input.type = 'range';
    input.min = String(lo);
    input.max = String(hi);
    input.step = String(stepSize);
    input.dataset.screen = screen;
    input.dataset.control = name;
    input.disabled = Boolean(Passersby.lockedReason(cfg));
    label.append(`${name} `, output, input);
    input.addEventListener('input', () => { liveBusy = input; output.textContent = Number(input.value).toFixed(2); });
    input.addEventListener('change', async () => {
      const value = Number(input.value);
      const result = await Passersby.sendControl(name, value, screen);
      liveBusy = null;
      note.textContent = result.ok ? `${screen} ${name} ${value.toFixed(2)}.` : `${name} refused: ${result.error}`;
    });
    return { label, input, output };
  }

  function showLive(controls) {
    if (!controls || typeof controls.values !== 'object') return;
    for (const [screen, values] of Object.entries(controls.values)) {
      if (screen === '*') continue; // the whole installation's: pause and exactingness have their own
      for (const [name, value] of Object.entries(values)) {
        const range = rangeOf(controls.ranges || {}, name);
        if (!range || typeof value !== 'number') continue;
        const id = `${screen}|${name}`;
        if (!liveKnobs.has(id)) {
          let group = live.querySelector(`fieldset[data-screen="${CSS.escape(screen)}"]`);
          if (!group) {
            group = document.createElement('fieldset');
            group.dataset.screen = screen;
            const legend = document.createElement('legend');
            legend.textContent = screen;
            group.append(legend);
            live.append(group);
          }
          const knob = liveKnob(screen, name, range);
          group.append(knob.label);
          liveKnobs.set(id, knob);
        }
        const knob = liveKnobs.get(id);
        if (knob.input !== liveBusy) {
          knob.input.value = String(value);
          knob.output.textContent = value.toFixed(2);
        }
      }
    }
    live.hidden = liveKnobs.size === 0;
  }

  async function capture(button) {
    const name = button.dataset.screen;
    button.disabled = true;
    note.textContent = `Capturing “${name}”…`;
    const result = await Passersby.sendCapture(name);
    button.disabled = false;
    note.textContent = result.ok
      ? `Captured ${result.id} (${result.quality}; re-render ${result.matches_shown ? 'matches' : 'differs from'} the screen).`
      : `Capture refused: ${result.error}`;
  }

  const locked = Passersby.lockedReason(cfg);
  for (const button of document.querySelectorAll('button.capture')) {
    button.disabled = Boolean(locked);
    button.addEventListener('click', () => capture(button));
  }
  const buttons = document.querySelectorAll('.buttons button');
  knob.disabled = Boolean(locked);
  for (const button of buttons) {
    button.disabled = Boolean(locked);
    button.addEventListener('click', () => press(button));
  }
  note.textContent = locked || 'Controls enabled.';
  document.body.dataset.controls = locked ? 'locked' : 'enabled';
})();
