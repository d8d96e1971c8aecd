/*
 * chronum-lab: Chronum in JupyterLab 4.
 *
 * - %%chronum cells are highlighted as YAML.
 * - The live view's Cancel button: an output of type application/vnd.chronum.cancel+json drawn
 *   as a button that talks to the kernel over the "chronum" comm. It shows only while the
 *   kernel says the run is live, so a saved notebook whose kernel died never shows a dead
 *   control (the rest of the live view is plain HTML). A page opened again after its run
 *   ended in a kernel still running gets the run's final picture in place of its live outputs.
 *
 * Written by hand rather than built by webpack: JupyterLab loads this file as a federated
 * extension (it calls window._JUPYTERLAB["chronum-lab"].init(shareScope), then .get(module)
 * for "./extension" and "./mimeExtension" and uses what the returned factory gives). The YAML
 * plugin needs no shared module: a code cell's language follows its model's mimeType, so a
 * cell whose text starts with %%chronum gets "text/x-yaml" (JupyterLab's own YAML mode), and
 * the others the notebook's. The renderer is a Lumino Widget, taken from the shared scope.
 */
(function () {
  "use strict";

  var YAML = "text/x-yaml";
  var MAGIC = /^%%chronum(\s|$)/;

  function isNotebookPanel(widget) {
    var content = widget && widget.content;
    return !!(content && content.model && content.widgets && "codeMimetype" in content);
  }

  function watchNotebook(panel) {
    var notebook = panel.content;
    var watchedCells = new WeakSet();
    var busy = false;

    function applyTo(cell) {
      var model = cell.model;
      if (!model || model.type !== "code" || !model.sharedModel) {
        return;
      }
      var chronum = MAGIC.test(model.sharedModel.getSource());
      var wanted = chronum ? YAML : notebook.codeMimetype;
      if (chronum) {
        cell.node.setAttribute("data-chronum-language", "yaml");
      } else {
        cell.node.removeAttribute("data-chronum-language");
      }
      if (!watchedCells.has(model) && model.mimeTypeChanged) {
        watchedCells.add(model);
        // The notebook resets every code cell's mimeType when the kernel's language is
        // known: set ours again.
        model.mimeTypeChanged.connect(function () {
          if (!busy) {
            setTimeout(apply, 0);
          }
        });
      }
      if (model.mimeType !== wanted) {
        model.mimeType = wanted;
      }
    }

    function apply() {
      busy = true;
      try {
        notebook.widgets.forEach(applyTo);
      } finally {
        busy = false;
      }
    }

    notebook.modelContentChanged.connect(apply);
    if (panel.sessionContext && panel.sessionContext.kernelChanged) {
      panel.sessionContext.kernelChanged.connect(function () {
        setTimeout(apply, 0);
      });
    }
    apply();
  }

  // The application, for the Cancel renderer to find the kernel of the notebook it is in.
  var theApp = null;
  var CANCEL_MIME = "application/vnd.chronum.cancel+json";

  function kernelOf(node) {
    if (!theApp) {
      return null;
    }
    var widgets = theApp.shell.widgets("main");
    for (var it = widgets.next(); !it.done; it = widgets.next()) {
      var widget = it.value;
      if (widget.node && widget.node.contains(node) && widget.sessionContext) {
        var session = widget.sessionContext.session;
        return session && session.kernel ? session.kernel : null;
      }
    }
    return null;
  }

  function htmlOf(data) {
    var value = data["text/html"];
    return Array.isArray(value) ? value.join("") : value || "";
  }

  // The cell showing `node`: its model's outputs of run `runId` (the live parts and the
  // Cancel output) become the final picture, then empty outputs, as the kernel settles them.
  function settle(node, runId, finalBundle) {
    if (!theApp) {
      return;
    }
    var widgets = theApp.shell.widgets("main");
    for (var it = widgets.next(); !it.done; it = widgets.next()) {
      var panel = it.value;
      if (!panel.node || !panel.node.contains(node) || !panel.content) {
        continue;
      }
      var cells = panel.content.widgets || [];
      for (var c = 0; c < cells.length; c++) {
        var cell = cells[c];
        if (!cell.node.contains(node) || !cell.model || !cell.model.outputs) {
          continue;
        }
        var outputs = cell.model.outputs;
        var mine = [];
        var live = 'data-run-id="' + runId + '"';
        for (var i = 0; i < outputs.length; i++) {
          var json = outputs.get(i).toJSON();
          var data = json.data || {};
          var cancel = data[CANCEL_MIME];
          var html = htmlOf(data);
          if ((cancel && cancel.run_id === runId)
              || (html.indexOf("chronum-live") >= 0 && html.indexOf(live) >= 0)) {
            mine.push(i);
          }
        }
        mine.forEach(function (index, n) {
          outputs.set(index, {
            output_type: "display_data",
            data: n === 0 ? finalBundle : { "text/plain": "" },
            metadata: {}
          });
        });
        return;
      }
    }
  }

  function cancelRendererClass(Widget) {
    // A class, not a prototype chain: Lumino's Widget is an ES class.
    return class CancelRenderer extends Widget {
      constructor(options) {
        super();
        this.mimeType = options.mimeType;
        this.addClass("chronum-cancel-output");
        this._comm = null;
        this._tries = 0;
        this._button = null;
        this._data = {};
      }

      renderModel(model) {
        var data = model.data[this.mimeType] || {};
        this._data = data;
        this.node.textContent = "";
        var button = document.createElement("button");
        button.className = "chronum-cancel jp-Button jp-mod-styled jp-mod-warn";
        button.textContent = "Cancel";
        button.title = data.tooltip || "Cancel this run: stop its steps, record it cancelled";
        button.disabled = !!data.disabled;
        button.style.display = "none"; // until the kernel says the run is live
        var self = this;
        button.addEventListener("click", function () {
          if (self._comm && !button.disabled) {
            button.disabled = true;
            self._comm.send({ action: "cancel", run_id: data.run_id });
          }
        });
        this._button = button;
        this.node.appendChild(button);
        this._ask();
        return Promise.resolve();
      }

      _ask() {
        var self = this;
        if (this.isDisposed) {
          return;
        }
        var kernel = this.node.isConnected ? kernelOf(this.node) : null;
        if (!kernel) {
          // not attached yet, or the notebook's kernel is still starting: look again briefly
          if (this._tries++ < 50) {
            setTimeout(function () { self._ask(); }, 200);
          }
          return;
        }
        var data = this._data;
        if (data.disabled && kernel.status === "busy") {
          // a blocking flow.run(): the kernel answers once the run is over; shown inactive
          this._button.style.display = "";
        }
        var comm;
        try {
          comm = kernel.createComm(data.target || "chronum");
        } catch (err) {
          return;
        }
        this._comm = comm;
        comm.onMsg = function (msg) {
          var answer = (msg.content && msg.content.data) || {};
          if (self._button) {
            self._button.style.display = answer.live ? "" : "none";
          }
          if (answer.final) {
            // the run ended while this page did not show it: its final picture replaces
            // the live outputs the page was opened with (the saved file gets it too)
            var node = self.node;
            setTimeout(function () { settle(node, data.run_id, answer.final); }, 0);
          }
        };
        comm.onClose = function () {
          self._comm = null;
          if (self._button) {
            self._button.style.display = "none";
          }
        };
        try {
          comm.open({ action: "query", run_id: data.run_id });
        } catch (err) {
          this._comm = null;
        }
      }

      dispose() {
        // The comm is dropped, not closed: this output goes away as its run ends, while the
        // kernel moves on to the next cell, and the kernel's side of it is a few bytes.
        this._comm = null;
        this._button = null;
        super.dispose();
      }
    };
  }

  var shareScope = null;

  function sharedModule(name) {
    var versions = shareScope && shareScope[name];
    if (!versions) {
      return Promise.reject(new Error("chronum-lab: no shared " + name));
    }
    var keys = Object.keys(versions).sort(function (a, b) {
      var pa = a.split(".").map(Number), pb = b.split(".").map(Number);
      for (var i = 0; i < 3; i++) {
        if ((pa[i] || 0) !== (pb[i] || 0)) {
          return (pa[i] || 0) - (pb[i] || 0);
        }
      }
      return 0;
    });
    return Promise.resolve(versions[keys[keys.length - 1]].get()).then(function (factory) {
      return factory();
    });
  }

  function mimeExtension() {
    return sharedModule("@lumino/widgets").then(function (lumino) {
      var CancelRenderer = cancelRendererClass(lumino.Widget);
      var extension = {
        id: "chronum-lab:cancel",
        description: "The Cancel button of a Chronum run's live view.",
        rendererFactory: {
          safe: true,
          mimeTypes: [CANCEL_MIME],
          defaultRank: 0,
          createRenderer: function (options) {
            return new CancelRenderer(options);
          }
        },
        rank: 0,
        dataType: "json"
      };
      return function () {
        return { __esModule: true, default: [extension] };
      };
    });
  }

  var plugin = {
    id: "chronum-lab:yaml-cells",
    description: "Highlights %%chronum cells as YAML.",
    autoStart: true,
    activate: function (app) {
      theApp = app;
      var watched = new WeakSet();

      function scan() {
        var widgets = app.shell.widgets("main");
        for (var it = widgets.next(); !it.done; it = widgets.next()) {
          var widget = it.value;
          if (isNotebookPanel(widget) && !watched.has(widget)) {
            watched.add(widget);
            if (widget.context && widget.context.ready) {
              widget.context.ready.then(watchNotebook.bind(null, widget));
            } else {
              watchNotebook(widget);
            }
          }
        }
      }

      app.restored.then(function () {
        scan();
        if (app.shell.layoutModified) {
          app.shell.layoutModified.connect(scan);
        }
        if (app.shell.currentChanged) {
          app.shell.currentChanged.connect(scan);
        }
      });
    }
  };

  var registry = (window._JUPYTERLAB = window._JUPYTERLAB || {});
  registry["chronum-lab"] = {
    init: function (scope) {
      shareScope = scope;
    },
    get: function (module) {
      if (module === "./mimeExtension") {
        return mimeExtension();
      }
      if (module !== "./extension") {
        return Promise.reject(new Error("chronum-lab has no module " + module));
      }
      return Promise.resolve(function () {
        return { __esModule: true, default: [plugin] };
      });
    }
  };
})();
