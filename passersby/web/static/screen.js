/* passersby kiosk: one screen alone, full window.
 * Keys: space = pause/resume, n or → = next face, q = quit (these three need ?token=),
 * f = fullscreen. A peepshow screen (its status has presses): space, Enter, a click or a
 * touch is a press (a new face), also with ?token=.
 */
'use strict';

(() => {
  const cfg = Passersby.config();
  const img = document.getElementById('screen');
  const toast = document.getElementById('toast');
  let paused = false;
  let toastTimer = null;
  let pressable = false; // a peepshow screen: presses instead of pause

  Passersby.fetchStatus().then((status) => {
    const state = (status.screen_state || {})[cfg.screen];
    pressable = Boolean(state && state.presses);
    document.body.dataset.pressable = pressable ? 'yes' : 'no';
  }).catch(() => { document.body.dataset.pressable = 'unknown'; });

  new Passersby.FrameStream(cfg.screen, img).start();

  function say(text) {
    toast.textContent = text;
    toast.classList.add('shown');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => toast.classList.remove('shown'), 2000);
  }

  function toggleFullscreen() {
    const request = document.fullscreenElement
      ? document.exitFullscreen()
      : document.documentElement.requestFullscreen();
    request.catch((err) => say(`fullscreen refused: ${err.message}`));
  }

  /** The engine's own paused flag when its status has one, else what this page last did. */
  async function isPaused() {
    try {
      const status = await Passersby.fetchStatus();
      if (typeof status.paused === 'boolean') return status.paused;
    } catch (err) { /* fall back to our own idea */ }
    return paused;
  }

  async function control(action) {
    const locked = Passersby.lockedReason(cfg);
    if (locked) {
      say(locked);
      return;
    }
    // A press is this screen's own button: with several peep screens, only this one answers.
    const result = await Passersby.sendControl(action, undefined, action === 'press' ? cfg.screen : undefined);
    if (!result.ok) {
      say(`${action} refused: ${result.error}`);
      return;
    }
    if (action === 'press') return; // the face is the answer
    if (action === 'pause' || action === 'resume') paused = action === 'pause';
    say({ pause: 'paused', resume: 'resumed', next: 'next face', quit: 'quitting' }[action]);
  }

  document.addEventListener('pointerdown', (event) => {
    if (!pressable || !event.isPrimary) return;
    event.preventDefault();
    control('press');
  });

  document.addEventListener('keydown', async (event) => {
    if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === 'f') {
      toggleFullscreen();
    } else if (pressable && (key === ' ' || key === 'Enter')) {
      event.preventDefault();
      control('press');
    } else if (key === ' ') {
      event.preventDefault();
      control((await isPaused()) ? 'resume' : 'pause');
    } else if (key === 'n' || key === 'ArrowRight') {
      control('next');
    } else if (key === 'q') {
      control('quit');
    }
  });

  // Keep a kiosk display awake where the browser allows it (localhost counts as secure).
  async function keepAwake() {
    try {
      if (navigator.wakeLock && document.visibilityState === 'visible') {
        await navigator.wakeLock.request('screen');
      }
    } catch (err) { /* not allowed here: the kiosk's power settings must do it */ }
  }
  document.addEventListener('visibilitychange', keepAwake);
  keepAwake();
})();
