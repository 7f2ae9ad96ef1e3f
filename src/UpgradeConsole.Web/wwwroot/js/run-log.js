// The live run log: SignalR (hub /hubs/run-log), the tail first, then live lines; bounded
// scrollback; follow/pause; a phase filter; search in the loaded lines; jump to the first error;
// links to a line (#L123). No inline styles (the CSP forbids them): ANSI colours become classes.
(function () {
  'use strict';
  var root = document.getElementById('run-log-viewer');
  if (!root || !window.signalR) { return; }
  var runId = parseInt(root.getAttribute('data-run-id'), 10);
  var view = document.getElementById('log-lines');
  var status = document.getElementById('log-status');
  var follow = document.getElementById('log-follow');
  var phaseFilter = document.getElementById('log-phase');
  var search = document.getElementById('log-search');
  var searchCount = document.getElementById('log-search-count');
  var TAIL = 2000, KEEP = 20000;
  var first = 0, last = 0, busy = Promise.resolve(), total = 0;

  var connection = new signalR.HubConnectionBuilder()
    .withUrl('/hubs/run-log')
    .withAutomaticReconnect([0, 1000, 2000, 5000, 10000, 30000])
    .build();

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

  function makeLine(l) {
    var div = document.createElement('div');
    div.className = 'uc-log-line';
    div.id = 'L' + l.sequence;
    div.setAttribute('data-seq', l.sequence);
    div.setAttribute('data-phase', l.phase);
    var a = document.createElement('a');
    a.className = 'uc-log-no';
    a.href = '#L' + l.sequence;
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

  // Scrolls the log (not the page) so that `line` sits in the middle.
  function centre(line) { view.scrollTop = line.offsetTop - view.clientHeight / 2; }

  function atBottom() { return view.scrollHeight - view.scrollTop - view.clientHeight < 8; }

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
    var fragment = document.createDocumentFragment();
    fresh.forEach(function (l) {
      if (l.sequence !== last + 1 && last !== 0) { return; }
      fragment.appendChild(makeLine(l));
      if (first === 0) { first = l.sequence; }
      last = l.sequence;
      total++;
    });
    view.appendChild(fragment);
    // Bounded scrollback: the oldest lines leave the page (the download has them all).
    while (view.childElementCount > KEEP) { view.removeChild(view.firstElementChild); }
    first = view.firstElementChild ? parseInt(view.firstElementChild.getAttribute('data-seq'), 10) : first;
    if (follow.checked) { view.scrollTop = view.scrollHeight; }
    setStatus('Lines ' + first + '–' + last + ' shown · live');
    return Promise.resolve();
  }

  function showWindow(from) {
    // Replace the view with the lines from `from` on (a link to a line, the first error).
    follow.checked = false;
    return invoke('Fetch', runId, Math.max(0, from - 50)).then(function (lines) {
      view.textContent = '';
      first = 0; last = 0;
      return appendNow(lines);
    }).then(function () {
      var target = document.getElementById('L' + from);
      if (target) { target.classList.add('uc-log-target'); centre(target); }
      setStatus('Lines ' + first + '–' + last + ' shown · paused at line ' + from + ' (turn Follow on to go live)');
    });
  }

  function start() {
    return connection.start().then(function () {
      var hash = /^#L(\d+)$/.exec(location.hash);
      if (hash) {
        return invoke('Join', runId, 1e15).then(function () { return showWindow(parseInt(hash[1], 10)); });
      }
      return invoke('Tail', runId, TAIL).then(function (tail) {
        return append(tail);
      }).then(function () {
        return invoke('Join', runId, last);
      }).then(append);
    }).catch(function (e) { setStatus('Not connected: ' + e + ' (the full log is a download away)'); });
  }

  connection.on('Chunks', function (id, chunks) {
    if (id === runId && follow.checked) { append(unpack(chunks)); }
  });
  connection.onreconnecting(function () { setStatus('Reconnecting…'); });
  // Back after a cut: ask for exactly what is missing.
  connection.onreconnected(function () { invoke('Join', runId, last).then(append); });

  view.addEventListener('scroll', function () {
    if (!atBottom() && follow.checked && document.activeElement !== follow) { follow.checked = false; setStatus('Paused (scrolled up) · lines ' + first + '–' + last); }
  });
  follow.addEventListener('change', function () {
    if (follow.checked) {
      // Back to live: catch up from the last line shown.
      invoke('Fetch', runId, last).then(append).then(function () { view.scrollTop = view.scrollHeight; });
    }
  });
  phaseFilter.addEventListener('change', function () {
    Array.prototype.forEach.call(view.children, applyFilters);
  });
  search.addEventListener('input', function () {
    Array.prototype.forEach.call(view.children, applyFilters);
    var matches = view.querySelectorAll('.uc-log-match');
    searchCount.textContent = search.value ? matches.length + ' match' + (matches.length === 1 ? '' : 'es') : '';
  });
  search.addEventListener('keydown', function (e) {
    if (e.key !== 'Enter') { return; }
    e.preventDefault();
    var matches = Array.prototype.filter.call(view.querySelectorAll('.uc-log-match'), function (m) { return !m.hidden; });
    if (matches.length === 0) { return; }
    follow.checked = false;
    var current = view.querySelector('.uc-log-current');
    var index = current ? (matches.indexOf(current) + 1) % matches.length : 0;
    if (current) { current.classList.remove('uc-log-current'); }
    matches[index].classList.add('uc-log-current');
    centre(matches[index]);
  });
  document.getElementById('log-first-error').addEventListener('click', function () {
    connection.invoke('FirstError', runId).then(function (seq) {
      if (!seq) { setStatus('No line looks like an error.'); return; }
      history.replaceState(null, '', '#L' + seq);
      return showWindow(seq);
    });
  });
  document.getElementById('log-earlier').addEventListener('click', function () {
    if (first <= 1) { return; }
    invoke('Fetch', runId, Math.max(0, first - 1 - 1000)).then(function (lines) {
      var older = lines.filter(function (l) { return l.sequence < first; });
      var fragment = document.createDocumentFragment();
      older.forEach(function (l) { fragment.appendChild(makeLine(l)); });
      view.insertBefore(fragment, view.firstElementChild);
      if (older.length) { first = older[0].sequence; }
      setStatus('Lines ' + first + '–' + last + ' shown');
    });
  });
  window.addEventListener('hashchange', function () {
    var hash = /^#L(\d+)$/.exec(location.hash);
    if (hash) { showWindow(parseInt(hash[1], 10)); }
  });

  start();
}());
