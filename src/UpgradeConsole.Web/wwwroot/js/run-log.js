// The live run log, as an ES module the run page (RunLogViewer.razor) attaches once its circuit runs:
// SignalR (hub /hubs/run-log) feeds it from here, never through a component render per line. The tail
// first, then live lines; bounded scrollback; follow/pause; a phase filter; search in the loaded lines;
// jump to the first error; links to a line (#L123). No inline styles (the CSP forbids them): ANSI
// colours become classes. Lines are numbered without gaps, so a reconnect asks for exactly what is
// missing (no gap, no duplicate); a paused position survives a reload of the tab (sessionStorage).
// Each batch of lines goes into a box of its own (.uc-log-chunk), never straight into the view: with
// thousands of sibling lines, the dashboard's stylesheets made Chromium restyle every line at each append
// (measured: 0.8 s per append of 100 lines with 20,000 shown, 10 ms in boxes; ./scripts/bench-circuits.sh).
// The boxes live in a shadow root of the view with a stylesheet of their own (css/run-log-lines.css): a following
// tab spent most of its time matching every new line against the dashboard's and MudBlazor's rules (ADR 0012).

var signalRLoading = null;

// signalr.min.js is a classic script (it sets window.signalR); loaded once, from this origin.
function loadSignalR(url) {
  if (window.signalR) { return Promise.resolve(); }
  if (!signalRLoading) {
    signalRLoading = new Promise(function (resolve, reject) {
      var script = document.createElement('script');
      script.src = url;
      script.onload = resolve;
      script.onerror = function () { signalRLoading = null; reject(new Error('could not load ' + url)); };
      document.head.appendChild(script);
    });
  }
  return signalRLoading;
}

export function attach(root, runId, signalRUrl, linesStyleUrl) {
  var handle = { disposed: false, connection: null, cleanups: [] };
  handle.dispose = function () {
    handle.disposed = true;
    handle.cleanups.forEach(function (f) { f(); });
    if (handle.connection) { return handle.connection.stop(); }
  };
  loadSignalR(signalRUrl).then(function () {
    if (!handle.disposed) { run(root, runId, linesStyleUrl, handle); }
  }, function (e) {
    var status = root.querySelector('#log-status');
    if (status) { status.textContent = 'Not connected: ' + e.message + ' (the full log is a download away)'; }
  });
  return handle;
}

// The view (#log-lines) scrolls; its shadow root holds the stylesheet of the lines and the list of boxes. Resolves
// once the stylesheet is there (or could not be loaded: the lines are still readable unstyled).
function linesOf(view, styleUrl) {
  var shadow = view.shadowRoot || view.attachShadow({ mode: 'open' });
  shadow.textContent = '';
  var style = document.createElement('link');
  style.rel = 'stylesheet';
  style.href = styleUrl;
  var list = document.createElement('div');
  list.className = 'uc-log-list';
  var ready = new Promise(function (resolve) { style.onload = resolve; style.onerror = resolve; });
  shadow.appendChild(style);
  shadow.appendChild(list);
  return { shadow: shadow, list: list, ready: ready };
}

function run(root, runId, linesStyleUrl, handle) {
  var view = root.querySelector('#log-lines');
  var inside = linesOf(view, linesStyleUrl);
  var list = inside.list;
  var status = root.querySelector('#log-status');
  var follow = root.querySelector('#log-follow');
  var phaseFilter = root.querySelector('#log-phase');
  var search = root.querySelector('#log-search');
  var searchCount = root.querySelector('#log-search-count');
  var TAIL = 2000, KEEP = 20000;
  var first = 0, last = 0, busy = inside.ready, total = 0, shown = 0;
  var positionKey = 'uc-log-position-' + runId;

  var connection = new signalR.HubConnectionBuilder()
    .withUrl('/hubs/run-log')
    .withAutomaticReconnect([0, 1000, 2000, 5000, 10000, 30000])
    .build();
  handle.connection = connection;

  function on(target, event, listener) {
    target.addEventListener(event, listener);
    handle.cleanups.push(function () { target.removeEventListener(event, listener); });
  }

  function setStatus(text) { status.textContent = text; }

  // The hub sends chunks: consecutive lines of one phase, the first numbered `first`.
  function unpack(chunks) {
    var lines = [];
    chunks.forEach(function (c) {
      for (var i = 0; i < c.lines.length; i++) { lines.push({ sequence: c.first + i, phase: c.phase, text: c.lines[i] }); }
    });
    return lines;
  }

  function invoke(method, a, b) {
    return connection.invoke(method, a, b).then(unpack);
  }

  // ANSI SGR → classes (30–37, 90–97 foreground, 1 bold, 0 reset); other escapes dropped.
  function render(text, line) {
    var parts = text.split(/\u001b\[([0-9;]*)m/);
    var classes = [];
    for (var i = 0; i < parts.length; i++) {
      if (i % 2 === 1) {
        parts[i].split(';').forEach(function (code) {
          var n = parseInt(code || '0', 10);
          if (n === 0) { classes = []; }
          else if (n === 1) { classes.push('ansi-bold'); }
          else if ((n >= 30 && n <= 37) || (n >= 90 && n <= 97)) {
            classes = classes.filter(function (c) { return c.indexOf('ansi-fg') !== 0; });
            classes.push('ansi-fg-' + n);
          }
        });
        continue;
      }
      var chunk = parts[i].replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
      if (!chunk) { continue; }
      if (classes.length === 0) { line.appendChild(document.createTextNode(chunk)); }
      else { var span = document.createElement('span'); span.className = classes.join(' '); span.textContent = chunk; line.appendChild(span); }
    }
  }

  function makeBox() {
    var box = document.createElement('div');
    box.className = 'uc-log-chunk';
    return box;
  }

  function lines() { return list.querySelectorAll('.uc-log-line'); }

  function makeLine(l) {
    var div = document.createElement('div');
    div.className = 'uc-log-line';
    div.id = 'L' + l.sequence;
    div.setAttribute('data-seq', l.sequence);
    div.setAttribute('data-phase', l.phase);
    var a = document.createElement('a');
    a.className = 'uc-log-no';
    // The full path: under the page's <base href="/"> a bare "#L12" would point at the root ("/#L12"), and
    // the router would leave the run page for it when the link is opened, copied or middle-clicked.
    a.href = pagePath() + '#L' + l.sequence;
    a.textContent = l.sequence;
    a.setAttribute('aria-hidden', 'true');
    a.tabIndex = -1;
    div.appendChild(a);
    var text = document.createElement('span');
    text.className = 'uc-log-text';
    render(l.text, text);
    div.appendChild(text);
    applyFilters(div);
    return div;
  }

  function applyFilters(div) {
    var phase = phaseFilter.value;
    div.hidden = phase !== '' && div.getAttribute('data-phase') !== phase;
    var q = search.value.toLowerCase();
    div.classList.toggle('uc-log-match', q !== '' && div.textContent.toLowerCase().indexOf(q) >= 0);
  }

  // Scrolls the log (not the page) so that `line` sits in the middle. A box of lines not drawn yet counts at its
  // placeholder height (content-visibility), which can leave too little to scroll: the box is watched (boxSizes,
  // below), and the line centred again when the box takes its real height.
  var centred = null;
  function centre(line) {
    if (boxSizes && centred && centred.parentNode !== newestBox) { boxSizes.unobserve(centred.parentNode); }
    centred = line;
    if (boxSizes) { boxSizes.observe(line.parentNode); }
    placeCentred();
  }

  function placeCentred() { view.scrollTop += centred.getBoundingClientRect().top - view.getBoundingClientRect().top - view.clientHeight / 2; }

  function atBottom() { return view.scrollHeight - view.scrollTop - view.clientHeight < 8; }

  // Where the view was last scrolled to follow the log: a scroll above it is the reader's, anything else is not.
  var followedTo = 0;
  function stickToBottom() { view.scrollTop = view.scrollHeight; followedTo = view.scrollTop; }

  // A new box counts at its placeholder height (content-visibility) until it is first drawn, after the follow
  // scroll; when it takes its real height, a following view goes down again, before that frame is painted, and a
  // paused one keeps the line a jump centred (centre, above) in the middle.
  var newestBox = null;
  var boxSizes = typeof ResizeObserver === 'function'
    ? new ResizeObserver(function () {
      if (follow.checked) { stickToBottom(); } else if (centred && centred.isConnected) { placeCentred(); }
    })
    : null;
  if (boxSizes) { handle.cleanups.push(function () { boxSizes.disconnect(); }); }
  function watchNewest(box) {
    if (!boxSizes) { return; }
    if (newestBox && (!centred || centred.parentNode !== newestBox)) { boxSizes.unobserve(newestBox); }
    newestBox = box;
    boxSizes.observe(box);
  }

  // Appends lines after `last`; a gap is fetched first, so the view is always 1 contiguous range.
  function append(lines) {
    busy = busy.then(function () { return appendNow(lines); }).catch(function (e) { setStatus('Error: ' + e); });
    return busy;
  }

  function appendNow(lines) {
    var fresh = lines.filter(function (l) { return l.sequence > last; });
    if (fresh.length === 0) { return Promise.resolve(); }
    if (last > 0 && fresh[0].sequence > last + 1) {
      return invoke('Fetch', runId, last).then(function (missing) {
        if (missing.length === 0) { return; }
        return appendNow(missing.filter(function (l) { return l.sequence < fresh[0].sequence; }).concat(fresh));
      });
    }
    var box = makeBox();
    fresh.forEach(function (l) {
      if (l.sequence !== last + 1 && last !== 0) { return; }
      box.appendChild(makeLine(l));
      if (first === 0) { first = l.sequence; }
      last = l.sequence;
      total++;
    });
    if (box.firstElementChild) { list.appendChild(box); shown += box.childElementCount; watchNewest(box); }
    // Bounded scrollback: the oldest lines leave the page, a box at a time (the download has them all).
    while (shown > KEEP && list.childElementCount > 1) { shown -= list.firstElementChild.childElementCount; list.removeChild(list.firstElementChild); }
    var top = list.querySelector('.uc-log-line');
    first = top ? parseInt(top.getAttribute('data-seq'), 10) : first;
    if (follow.checked) { stickToBottom(); }
    setStatus('Lines ' + first + '–' + last + ' shown · live');
    return Promise.resolve();
  }

  function showWindow(from) {
    // Replace the view with the lines from `from` on (a link to a line, the first error).
    follow.checked = false;
    return invoke('Fetch', runId, Math.max(0, from - 50)).then(function (lines) {
      list.textContent = '';
      first = 0; last = 0; shown = 0;
      return appendNow(lines);
    }).then(function () {
      var target = inside.shadow.getElementById('L' + from);
      if (target) { target.classList.add('uc-log-target'); centre(target); }
      setStatus('Lines ' + first + '–' + last + ' shown · paused at line ' + from + ' (turn Follow on to go live)');
    });
  }

  // Where a paused reader was (the top line in view), kept for this tab: a reload or a server restart comes back there.
  function topLine() {
    var all = lines();
    var top = view.getBoundingClientRect().top;
    for (var i = 0; i < all.length; i++) {
      if (!all[i].hidden && all[i].getBoundingClientRect().bottom > top) { return parseInt(all[i].getAttribute('data-seq'), 10); }
    }
    return 0;
  }

  function savePosition() {
    try {
      if (follow.checked) { sessionStorage.removeItem(positionKey); }
      else if (topLine() > 0) { sessionStorage.setItem(positionKey, String(topLine())); }
    } catch (e) { /* storage refused: nothing to keep */ }
  }

  function savedPosition() {
    try { return parseInt(sessionStorage.getItem(positionKey) || '0', 10); } catch (e) { return 0; }
  }

  // This page's own address without its fragment: what a link to a line is relative to.
  function pagePath() { return location.pathname + location.search; }

  // The address names the line; absolute, because the page's <base href="/"> would turn "#L1" into "/#L1".
  function linkTo(seq) {
    history.replaceState(history.state, '', pagePath() + '#L' + seq);
  }

  function start() {
    return connection.start().then(function () {
      var hash = /^#L(\d+)$/.exec(location.hash);
      var at = hash ? parseInt(hash[1], 10) : savedPosition();
      if (at > 0) {
        return invoke('Join', runId, 1e15).then(function () { return showWindow(at); });
      }
      return invoke('Tail', runId, TAIL).then(function (tail) {
        return append(tail);
      }).then(function () {
        return invoke('Join', runId, last);
      }).then(append);
    }).catch(function (e) { setStatus('Not connected: ' + e + ' (the full log is a download away)'); });
  }

  // A line number is a link to the line; handled here, before the page's router sees the click (a click inside the
  // shadow root reaches the document as one on the view, so it is handled in the shadow root).
  on(inside.shadow, 'click', function (e) {
    var link = e.target.closest ? e.target.closest('a.uc-log-no') : null;
    if (!link) { return; }
    e.preventDefault();
    e.stopPropagation();
    var seq = parseInt(link.parentNode.getAttribute('data-seq'), 10);
    linkTo(seq);
    showWindow(seq);
  });
  on(window, 'pagehide', savePosition);
  handle.cleanups.push(savePosition);

  connection.on('Chunks', function (id, chunks) {
    if (id === runId && follow.checked) { append(unpack(chunks)); }
  });
  connection.onreconnecting(function () { setStatus('Reconnecting…'); });
  // The retries ran out: said, not hidden behind a "live" that no longer is.
  connection.onclose(function (e) {
    if (!handle.disposed) { setStatus('Disconnected' + (e ? ': ' + e : '') + ' · reload the page to resume (the full log is a download away)'); }
  });
  // Back after a cut: ask for exactly what is missing.
  connection.onreconnected(function () { invoke('Join', runId, last).then(append); });

  // Scrolling up pauses. A box of lines laid out at its real height after the follow scroll (boxes out of view
  // keep a placeholder height until drawn) leaves the view above the bottom without anyone scrolling: back down.
  on(view, 'scroll', function () {
    if (!follow.checked || document.activeElement === follow || atBottom()) { return; }
    if (view.scrollTop >= followedTo - 8) { stickToBottom(); return; }
    follow.checked = false;
    setStatus('Paused (scrolled up) · lines ' + first + '–' + last);
  });
  on(follow, 'change', function () {
    if (follow.checked) {
      // Back to live: catch up from the last line shown.
      invoke('Fetch', runId, last).then(append).then(stickToBottom);
    }
  });
  on(phaseFilter, 'change', function () {
    Array.prototype.forEach.call(lines(), applyFilters);
  });
  on(search, 'input', function () {
    Array.prototype.forEach.call(lines(), applyFilters);
    var matches = list.querySelectorAll('.uc-log-match');
    searchCount.textContent = search.value ? matches.length + ' match' + (matches.length === 1 ? '' : 'es') : '';
  });
  on(search, 'keydown', function (e) {
    if (e.key !== 'Enter') { return; }
    e.preventDefault();
    var matches = Array.prototype.filter.call(list.querySelectorAll('.uc-log-match'), function (m) { return !m.hidden; });
    if (matches.length === 0) { return; }
    follow.checked = false;
    var current = list.querySelector('.uc-log-current');
    var index = current ? (matches.indexOf(current) + 1) % matches.length : 0;
    if (current) { current.classList.remove('uc-log-current'); }
    matches[index].classList.add('uc-log-current');
    centre(matches[index]);
  });
  on(root.querySelector('#log-first-error'), 'click', function () {
    setStatus('Looking for the first error…');
    connection.invoke('FirstError', runId).then(function (seq) {
      if (!seq) { setStatus('No line looks like an error.'); return; }
      linkTo(seq);
      return showWindow(seq);
    }).catch(function (e) { setStatus('Could not look for the first error: ' + e); });
  });
  on(root.querySelector('#log-earlier'), 'click', function () {
    if (first <= 1) { return; }
    invoke('Fetch', runId, Math.max(0, first - 1 - 1000)).then(function (fetched) {
      var older = fetched.filter(function (l) { return l.sequence < first; });
      if (older.length === 0) { return; }
      var box = makeBox();
      older.forEach(function (l) { box.appendChild(makeLine(l)); });
      list.insertBefore(box, list.firstElementChild);
      shown += older.length;
      first = older[0].sequence;
      setStatus('Lines ' + first + '–' + last + ' shown');
    });
  });
  on(window, 'hashchange', function () {
    var hash = /^#L(\d+)$/.exec(location.hash);
    if (hash) { showWindow(parseInt(hash[1], 10)); }
  });

  start();
}
