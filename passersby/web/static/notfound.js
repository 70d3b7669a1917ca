/* passersby kiosk: the 404 page lists the screens there are. */
'use strict';

(() => {
  const cfg = Passersby.config();
  if (cfg.screen) {
    document.getElementById('what').textContent = `There is no screen called “${cfg.screen}”.`;
  } else if (cfg.path) {
    document.getElementById('what').textContent = `Nothing lives at ${cfg.path}.`;
  }
  const list = document.getElementById('screen-links');
  for (const name of cfg.screens) {
    const link = document.createElement('a');
    link.href = `/screen/${encodeURIComponent(name)}`;
    link.textContent = name;
    const item = document.createElement('li');
    item.append(link);
    list.append(item);
  }
})();
