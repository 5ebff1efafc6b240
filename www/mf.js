/* microfunnel loader. Defines the command queue so a site may call
   mf('consent', …), mf('track', …) before the module loads. Capture, consent
   resolution and the wasm module arrive with the browser-module work; until
   then this loader sends nothing and stores nothing. */
(function (w) {
  w.mf = w.mf || function () { (w.mf.q = w.mf.q || []).push(arguments); };
})(window);
