// Blazor's reconnect UI, styled (css/app.css .uc-reconnect). blazor.web.js puts its state classes on
// #components-reconnect-modal and raises components-reconnect-state-changed there. A lost link shows the
// banner while Blazor retries. When the server restarted, the circuit is gone ("rejected"), or the retries
// ran out ("failed"): wait until the server answers /healthz, then load the same address again; the run
// page resumes its log by sequence number, so nothing is missed or shown twice.
(function () {
  'use strict';
  var banner = document.getElementById('components-reconnect-modal');
  if (!banner) { return; }
  var waiting = false;

  function reloadWhenUp() {
    if (waiting) { return; }
    waiting = true;
    banner.setAttribute('data-reload', 'waiting');
    (function poll() {
      fetch('/healthz', { cache: 'no-store', credentials: 'same-origin' }).then(function (response) {
        if (response.ok) { location.reload(); } else { setTimeout(poll, 1000); }
      }, function () { setTimeout(poll, 1000); });
    }());
  }

  banner.addEventListener('components-reconnect-state-changed', function (event) {
    var state = event.detail && event.detail.state;
    banner.setAttribute('data-state', state || '');
    if (state === 'rejected' || state === 'failed' || state === 'resume-failed') { reloadWhenUp(); }
  });
  var retry = banner.querySelector('.uc-reconnect-retry');
  if (retry) { retry.addEventListener('click', function () { location.reload(); }); }
}());
