package demo

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/websocket"
)

const maxWSMessage = 1 << 20

// websocket echoes each text message back. It accepts any Origin: the echo
// reveals nothing, and the proxy in front decides who gets through.
func (a *app) websocket() http.Handler {
	return websocket.Server{
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(ws *websocket.Conn) {
			defer ws.Close()
			ws.MaxPayloadBytes = maxWSMessage
			for {
				var msg string
				if err := websocket.Message.Receive(ws, &msg); err != nil {
					return
				}
				if err := websocket.Message.Send(ws, msg); err != nil {
					return
				}
			}
		},
	}
}

// stream writes ?n= lines (default 5, at most maxStreamLines), flushing
// each and pausing StreamInterval between them.
func (a *app) stream(w http.ResponseWriter, r *http.Request) {
	n := 5
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxStreamLines {
			http.Error(w, fmt.Sprintf("n must be a whole number from 1 to %d", maxStreamLines), http.StatusBadRequest)
			return
		}
		n = v
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 1; i <= n; i++ {
		if i > 1 {
			timer.Reset(a.opts.StreamInterval)
			select {
			case <-r.Context().Done():
				return
			case <-timer.C:
			}
		}
		if _, err := fmt.Fprintf(w, "%s line %d of %d\n", a.opts.Name, i, n); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
