package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Event is a new request or a decision, as notifiers see it.
type Event struct {
	Action     string // request, approve, deny, revoke, cancel
	Time       time.Time
	Actor      string
	ActorEmail string
	Request    Request
	Reason     string
	Detail     string
}

// Notifier is told about events after they are committed. Notify must not
// block: the request path calls it.
type Notifier interface {
	Notify(ctx context.Context, ev Event)
}

// WebhookQueueSize is how many events a Webhook holds before it drops new
// ones (logging each drop; the events stay in the database and audit).
const WebhookQueueSize = 256

// Webhook posts events as Slack-compatible JSON ({"text": ...} plus a
// "backgate" object with the details) to one URL, from a background
// goroutine with a bounded queue. A slow or failing endpoint never blocks
// or fails the action that caused the event.
type Webhook struct {
	url     string
	timeout time.Duration
	client  *http.Client
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
	queue  chan Event
	done   chan struct{}
	stop   context.CancelFunc
	ctx    context.Context
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook starts a notifier posting to rawURL (http or https), each POST
// limited to timeout (0: 5s). client nil means a new http.Client; log nil
// discards. Close stops it.
func NewWebhook(rawURL string, timeout time.Duration, client *http.Client, log *slog.Logger) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: webhook URL must be an absolute http(s) URL", ErrInvalid)
	}
	if timeout < 0 {
		return nil, fmt.Errorf("%w: webhook timeout %s is negative", ErrInvalid, timeout)
	}
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	if client == nil {
		client = &http.Client{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	w := &Webhook{url: rawURL, timeout: timeout, client: client, log: log,
		queue: make(chan Event, WebhookQueueSize), done: make(chan struct{}), stop: stop, ctx: ctx}
	go w.run()
	return w, nil
}

// Notify queues ev; when the queue is full or the webhook closed, ev is
// dropped with a warning. It never blocks.
func (w *Webhook) Notify(_ context.Context, ev Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.log.Warn("access: webhook closed, notification dropped", "action", ev.Action, "request", ev.Request.ID)
		return
	}
	select {
	case w.queue <- ev:
	default:
		w.log.Warn("access: webhook queue full, notification dropped", "action", ev.Action, "request", ev.Request.ID)
	}
}

// Close stops taking events and waits until the queued ones are sent or
// ctx ends (then in-flight posts are cancelled).
func (w *Webhook) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		w.stop()
		return nil
	case <-ctx.Done():
		w.stop()
		<-w.done
		return ctx.Err()
	}
}

func (w *Webhook) run() {
	defer close(w.done)
	for ev := range w.queue {
		if err := w.post(ev); err != nil {
			w.log.Warn("access: webhook failed", "action", ev.Action, "request", ev.Request.ID, "err", err)
		}
	}
}

type webhookBody struct {
	Text     string      `json:"text"`
	Backgate webhookData `json:"backgate"`
}

type webhookData struct {
	Action      string `json:"action"`
	Time        string `json:"time"`
	Actor       string `json:"actor"`
	RequestID   string `json:"request_id"`
	Requester   string `json:"requester"`
	Service     string `json:"service"`
	Environment string `json:"environment"`
	Duration    string `json:"duration"`
	State       string `json:"state"`
	Reason      string `json:"reason,omitempty"`
	ExpiresAt   string `json:"expires_at,omitempty"`
}

// WebhookBody is the JSON posted for ev.
func WebhookBody(ev Event) ([]byte, error) {
	r := ev.Request
	var text string
	switch ev.Action {
	case "request":
		text = fmt.Sprintf("%s requests access to %s (%s) for %s: %s", r.Requester, r.Service, r.Environment, r.Duration, r.Reason)
	case "approve":
		if r.State == StateApproved {
			text = fmt.Sprintf("%s approved access of %s to %s (%s) until %s", ev.Actor, r.Requester, r.Service, r.Environment, r.ExpiresAt.Format(time.RFC3339))
		} else {
			text = fmt.Sprintf("%s approved access of %s to %s (%s); another approval is required", ev.Actor, r.Requester, r.Service, r.Environment)
		}
	case "deny":
		text = fmt.Sprintf("%s denied access of %s to %s (%s): %s", ev.Actor, r.Requester, r.Service, r.Environment, ev.Reason)
	case "revoke":
		text = fmt.Sprintf("%s revoked access of %s to %s (%s)", ev.Actor, r.Requester, r.Service, r.Environment)
		if ev.Reason != "" {
			text += ": " + ev.Reason
		}
	case "cancel":
		text = fmt.Sprintf("%s withdrew the request for access to %s (%s)", r.Requester, r.Service, r.Environment)
	default:
		text = fmt.Sprintf("%s: %s by %s on %s (%s)", ev.Action, r.ID, ev.Actor, r.Service, r.Environment)
	}
	d := webhookData{Action: ev.Action, Time: ev.Time.UTC().Format(time.RFC3339), Actor: ev.Actor, RequestID: r.ID,
		Requester: r.Requester, Service: r.Service, Environment: r.Environment, Duration: r.Duration.String(),
		State: string(r.State), Reason: ev.Reason}
	if !r.ExpiresAt.IsZero() {
		d.ExpiresAt = r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return json.Marshal(webhookBody{Text: text, Backgate: d})
}

func (w *Webhook) post(ev Event) error {
	body, err := WebhookBody(ev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a secret token: keep it out of logs
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
