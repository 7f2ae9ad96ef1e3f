// The live run log, as an ES module the run page (RunLogViewer.razor) attaches once its circuit runs:
// SignalR (hub /hubs/run-log) feeds it from here, never through a component render per line. The tail
// first, then live lines; bounded scrollback; follow/pause; a phase filter; search in the loaded lines;
// jump to the first error; links to a line (#L123). ANSI colours become classes. Lines are numbered
// without gaps, so a reconnect asks for exactly what is missing (no gap, no duplicate); a paused position
// survives a reload of the tab (sessionStorage).
// The view draws only the lines in view (a window over the kept lines, one fixed height per line, in a list as tall
// as them all): a following tab used to lay out, shape and paint every appended line, ~90 ms of work per append at
// 2,000 lines/s (ADR 0017, ./scripts/bench-circuits.sh). The lines live in a shadow root of the view with a
// stylesheet of their own (css/run-log-lines.css), so the dashboard's and MudBlazor's rules never reach them (ADR 0012).
// The view's data-first, data-last and data-kept say which lines are kept (the tests and the benchmarks read them).

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

// The view (#log-lines) scrolls; its shadow root holds the stylesheet of the lines and the list: a spacer as tall as
// every line kept, with a window in it that holds the lines in view. Resolves once the stylesheet is there (or could
// not be loaded: the lines are still readable unstyled).
function linesOf(view, styleUrl) {
  var shadow = view.shadowRoot || view.attachShadow({ mode: 'open' });
  shadow.textContent = '';
  var style = document.createElement('link');
  style.rel = 'stylesheet';
  style.href = styleUrl;
  var list = document.createElement('div');
  list.className = 'uc-log-list';
  var win = document.createElement('div');
  win.className = 'uc-log-window';
  list.appendChild(win);
  var ready = new Promise(function (resolve) { style.onload = resolve; style.onerror = resolve; });
  shadow.appendChild(style);
  shadow.appendChild(list);
  return { shadow: shadow, list: list, win: win, ready: ready };
}

function run(root, runId, linesStyleUrl, handle) {
  var view = root.querySelector('#log-lines');
  var inside = linesOf(view, linesStyleUrl);
  var list = inside.list, win = inside.win;
  var status = root.querySelector('#log-status');
  var follow = root.querySelector('#log-follow');
  var phaseFilter = root.querySelector('#log-phase');
  var search = root.querySelector('#log-search');
  var searchCount = root.querySelector('#log-search-count');
  var TAIL = 2000, KEEP = 20000, AROUND = 20;
  var positionKey = 'uc-log-position-' + runId;

  // The kept lines, oldest first, numbered without a gap: {sequence, phase, text, plain}. Only the lines in view (and
  // AROUND more on each side) are elements; the list is as tall as every line shown, each line one height (`lineHeight`,
  // measured), so a line's place is its index and an append costs the lines it brings into view, not every line kept.
  var rows = [];
  var last = 0;
  // With a phase chosen, the sequences of its lines, in order; null shows every kept line.
  var shownSeqs = null;
  var lineHeight = 0;
  var widest = 0;
  var targetSeq = 0, currentSeq = 0, query = '', matches = 0;
  var busy = inside.ready.then(measure);

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

  function first() { return rows.length ? rows[0].sequence : 0; }

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

  // A line's text without escapes, lower case: what search and the list's width go by (computed once, when needed).
  function plain(row) {
    if (row.plain === undefined) { row.plain = row.text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').toLowerCase(); }
    return row.plain;
  }

  function makeLine(row) {
    var div = document.createElement('div');
    div.className = 'uc-log-line';
    div.id = 'L' + row.sequence;
    div.setAttribute('data-seq', row.sequence);
    div.setAttribute('data-phase', row.phase);
    var a = document.createElement('a');
    a.className = 'uc-log-no';
    // The full path: under the page's <base href="/"> a bare "#L12" would point at the root ("/#L12"), and
    // the router would leave the run page for it when the link is opened, copied or middle-clicked.
    a.href = pagePath() + '#L' + row.sequence;
    a.textContent = row.sequence;
    a.setAttribute('aria-hidden', 'true');
    a.tabIndex = -1;
    div.appendChild(a);
    var text = document.createElement('span');
    text.className = 'uc-log-text';
    render(row.text, text);
    div.appendChild(text);
    mark(div, row);
    return div;
  }

  // The classes that say what a drawn line is to the reader: a search match, the match gone to, the line linked to.
  function mark(div, row) {
    div.classList.toggle('uc-log-match', matching(row));
    div.classList.toggle('uc-log-current', row.sequence === currentSeq);
    div.classList.toggle('uc-log-target', row.sequence === targetSeq);
  }

  function matching(row) { return query !== '' && plain(row).indexOf(query) >= 0; }

  // The count of kept lines that match the search, kept current as lines come and go.
  function recount() {
    matches = 0;
    if (query) { rows.forEach(function (r) { if (matching(r)) { matches++; } }); }
    showCount();
  }

  function showCount() { searchCount.textContent = query ? matches + ' match' + (matches === 1 ? '' : 'es') : ''; }

  function remark() {
    for (var el = win.firstElementChild; el; el = el.nextElementSibling) {
      var row = rowOf(+el.getAttribute('data-seq'));
      if (row) { mark(el, row); }
    }
  }

  function passes(row) { return phaseFilter.value === '' || String(row.phase) === phaseFilter.value; }

  function rowOf(seq) { return rows[seq - first()]; }

  // The lines shown (kept and of the chosen phase): how many, the i-th one's sequence, and the index of the first
  // one at or after `seq`.
  function count() { return shownSeqs ? shownSeqs.length : rows.length; }
  function seqAt(i) { return shownSeqs ? shownSeqs[i] : first() + i; }
  function indexOf(seq) {
    if (!shownSeqs) { return Math.min(Math.max(seq - first(), 0), rows.length); }
    var lo = 0, hi = shownSeqs.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (shownSeqs[mid] < seq) { lo = mid + 1; } else { hi = mid; } }
    return lo;
  }

  function refilter() {
    shownSeqs = phaseFilter.value === '' ? null : rows.filter(passes).map(function (r) { return r.sequence; });
  }

  // One line's height, from a drawn probe in the list's own sheet and the view's font (again on a resize: a zoom).
  function measure() {
    var probe = makeLine({ sequence: 0, phase: '', text: 'x' });
    win.appendChild(probe);
    var height = probe.getBoundingClientRect().height;
    win.removeChild(probe);
    if (height > 0 && height !== lineHeight) { lineHeight = height; win.textContent = ''; size(); }
  }

  // The list is as tall as the lines shown, and as wide as the widest kept line (lines do not wrap; the view
  // scrolls sideways), so neither scroll bar changes as lines come into view and leave it.
  function size() {
    list.style.height = (count() * lineHeight) + 'px';
    list.style.minWidth = 'calc(' + widest + 'ch + 6.5rem)';
  }

  // Draws the lines in view and AROUND more on each side (a following view, whose lines all change at each append,
  // only a few above): the ones already drawn stay, the others come and go.
  function draw() {
    var n = count();
    var h = lineHeight || 20;
    var top = view.scrollTop - list.offsetTop;
    var from = Math.max(0, Math.min(n, Math.floor(top / h) - (follow.checked ? 2 : AROUND)));
    var to = Math.max(from, Math.min(n, Math.ceil((top + view.clientHeight) / h) + AROUND));
    var drawn = new Map();
    for (var el = win.firstElementChild; el; el = el.nextElementSibling) { drawn.set(+el.getAttribute('data-seq'), el); }
    var wanted = [];
    for (var i = from; i < to; i++) {
      var seq = seqAt(i);
      var line = drawn.get(seq);
      if (line) { drawn.delete(seq); } else { line = makeLine(rowOf(seq)); }
      wanted.push(line);
    }
    drawn.forEach(function (gone) { win.removeChild(gone); });
    // What stays is already in order; the new lines go in around it.
    var cursor = win.firstElementChild;
    wanted.forEach(function (line) {
      if (line === cursor) { cursor = cursor.nextElementSibling; } else { win.insertBefore(line, cursor); }
    });
    var shift = 'translateY(' + (from * h) + 'px)';
    if (win.style.transform !== shift) { win.style.transform = shift; }
    drawnAt = view.scrollTop;
    view.setAttribute('data-first', first());
    view.setAttribute('data-last', last);
    view.setAttribute('data-kept', rows.length);
  }

  // Draws before the next frame, once for everything that changed since the last one: a tab that falls behind
  // (many appends between two frames) lays out and draws once per frame, not once per append. A following view
  // goes to the bottom then.
  var drawing = 0, drawnAt = -1;
  function drawSoon() {
    if (!drawing) {
      drawing = requestAnimationFrame(function () {
        drawing = 0;
        if (follow.checked) { stickToBottom(); } else { draw(); }
      });
    }
  }

  // Scrolls the log (not the page) so that line `seq` (or the first shown after it) is `down` pixels below the view's
  // top, and draws.
  function place(seq, down) {
    view.scrollTop = list.offsetTop + indexOf(seq) * lineHeight - down;
    draw();
  }

  // Line `seq` in the middle of the view.
  function centre(seq) { place(seq, (view.clientHeight - lineHeight) / 2); }

  function atBottom() { return view.scrollHeight - view.scrollTop - view.clientHeight < 8; }

  // Where the view was last scrolled to follow the log: a scroll above it is the reader's, anything else is not.
  var followedTo = 0;
  function stickToBottom() { view.scrollTop = view.scrollHeight; followedTo = view.scrollTop; draw(); }

  if (typeof ResizeObserver === 'function') {
    // A new size or zoom: the line height is measured again, and a paused reader stays at the line they were reading.
    var resized = new ResizeObserver(function () {
      var at = topLine(), before = lineHeight;
      measure();
      if (follow.checked) { stickToBottom(); } else if (at > 0 && lineHeight !== before) { place(at, 0); } else { draw(); }
    });
    resized.observe(view);
    handle.cleanups.push(function () { resized.disconnect(); });
  }

  // Work on the kept lines runs one piece at a time, in order, after the stylesheet and the first measure; a failure
  // is said and does not stop what comes after it.
  function queue(work) {
    busy = busy.then(work).catch(function (e) { setStatus('Error: ' + e); });
    return busy;
  }

  // Appends lines after `last`; a gap is fetched first, so the kept lines are always 1 contiguous range.
  function append(lines) { return queue(function () { return appendNow(lines); }); }

  function appendNow(lines) {
    var fresh = lines.filter(function (l) { return l.sequence > last; });
    if (fresh.length === 0) { return Promise.resolve(); }
    if (last > 0 && fresh[0].sequence > last + 1) {
      return invoke('Fetch', runId, last).then(function (missing) {
        if (missing.length === 0) { return; }
        return appendNow(missing.filter(function (l) { return l.sequence < fresh[0].sequence; }).concat(fresh));
      });
    }
    fresh.forEach(function (l) {
      if (l.sequence !== last + 1 && last !== 0) { return; }
      rows.push(l);
      if (shownSeqs && passes(l)) { shownSeqs.push(l.sequence); }
      if (matching(l)) { matches++; }
      widest = Math.max(widest, l.text.length);
      last = l.sequence;
    });
    // Bounded scrollback: the oldest lines leave (the download has them all); a paused view keeps its lines in place.
    if (rows.length > KEEP) {
      var before = count();
      rows.splice(0, rows.length - KEEP).forEach(function (r) { if (matching(r)) { matches--; } });
      if (shownSeqs) { shownSeqs.splice(0, indexOf(first())); }
      if (!follow.checked) { view.scrollTop -= (before - count()) * lineHeight; }
    }
    size();
    drawSoon();
    if (query) { showCount(); }
    setStatus('Lines ' + first() + '–' + last + ' shown · live');
    return Promise.resolve();
  }

  function showWindow(from) {
    // Replace the view with the lines from `from` on (a link to a line, the first error).
    follow.checked = false;
    return invoke('Fetch', runId, Math.max(0, from - 50)).then(function (lines) {
      return queue(function () {
        rows = []; last = 0; widest = 0; targetSeq = from; matches = 0;
        refilter();
        win.textContent = '';
        return appendNow(lines).then(function () {
          centre(from);
          setStatus('Lines ' + first() + '–' + last + ' shown · paused at line ' + from + ' (turn Follow on to go live)');
        });
      });
    });
  }

  // Where a paused reader was (the top line in view), kept for this tab: a reload or a server restart comes back there.
  function topLine() {
    if (count() === 0 || lineHeight === 0) { return 0; }
    return seqAt(Math.min(count() - 1, Math.max(0, Math.floor((view.scrollTop - list.offsetTop) / lineHeight))));
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

  // Scrolling draws the lines that come into view (not again after a scroll the viewer made and drew itself); scrolling
  // up pauses.
  on(view, 'scroll', function () {
    if (view.scrollTop !== drawnAt) { drawSoon(); }
    if (!follow.checked || document.activeElement === follow || atBottom()) { return; }
    if (view.scrollTop >= followedTo - 8) { stickToBottom(); return; }
    follow.checked = false;
    setStatus('Paused (scrolled up) · lines ' + first() + '–' + last);
  });
  on(follow, 'change', function () {
    if (follow.checked) {
      // Back to live: catch up from the last line shown.
      invoke('Fetch', runId, last).then(append).then(stickToBottom);
    }
  });
  // Another phase: the reader stays at the line they were reading (or the next one of that phase).
  on(phaseFilter, 'change', function () {
    var at = topLine();
    refilter();
    win.textContent = '';
    size();
    if (follow.checked) { stickToBottom(); } else { place(at, 0); }
  });
  on(search, 'input', function () {
    query = search.value.toLowerCase();
    currentSeq = 0;
    recount();
    remark();
  });
  // Enter goes to the next match among the lines shown, from the one gone to last (round to the first).
  on(search, 'keydown', function (e) {
    if (e.key !== 'Enter') { return; }
    e.preventDefault();
    if (!query || rows.length === 0) { return; }
    var start = currentSeq >= first() ? currentSeq - first() + 1 : 0;
    for (var k = 0; k < rows.length; k++) {
      var row = rows[(start + k) % rows.length];
      if (passes(row) && matching(row)) {
        follow.checked = false;
        currentSeq = row.sequence;
        centre(currentSeq);
        remark();
        return;
      }
    }
  });
  on(root.querySelector('#log-first-error'), 'click', function () {
    setStatus('Looking for the first error…');
    connection.invoke('FirstError', runId).then(function (seq) {
      if (!seq) { setStatus('No line looks like an error.'); return; }
      linkTo(seq);
      return showWindow(seq);
    }).catch(function (e) { setStatus('Could not look for the first error: ' + e); });
  });
  // Older lines go above; the view stays on the lines it showed.
  on(root.querySelector('#log-earlier'), 'click', function () {
    if (first() <= 1) { return; }
    var before = first();
    invoke('Fetch', runId, Math.max(0, before - 1 - 1000)).then(function (fetched) {
      queue(function () {
        var older = fetched.filter(function (l) { return l.sequence < first(); });
        if (older.length === 0) { return; }
        var shownBefore = count();
        older.forEach(function (l) { widest = Math.max(widest, l.text.length); });
        rows = older.concat(rows);
        refilter();
        recount();
        size();
        view.scrollTop += (count() - shownBefore) * lineHeight;
        draw();
        setStatus('Lines ' + first() + '–' + last + ' shown');
      });
    });
  });
  on(window, 'hashchange', function () {
    var hash = /^#L(\d+)$/.exec(location.hash);
    if (hash) { showWindow(parseInt(hash[1], 10)); }
  });

  start();
}
