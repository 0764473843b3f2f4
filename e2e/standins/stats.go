package main

import (
	"encoding/json"
	"net/http"
	"sync"
)

// stats counts the requests a stand-in received, by "METHOD /path", and how many of them came
// through the edge (they carry its X-Request-Id).
type stats struct {
	mu        sync.Mutex
	Requests  map[string]int `json:"requests"`
	ViaEdge   map[string]int `json:"via_edge"`
	Countable int            `json:"total"`
}

func newStats() *stats { return &stats{Requests: map[string]int{}, ViaEdge: map[string]int{}} }

func (s *stats) count(r *http.Request) {
	k := r.Method + " " + r.URL.Path
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Requests[k]++
	if r.Header.Get("X-Request-Id") != "" {
		s.ViaEdge[k]++
	}
	s.Countable++
}

func (s *stats) serve(w http.ResponseWriter) {
	s.mu.Lock()
	b, _ := json.Marshal(s)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// matrixError writes Matrix error JSON.
func matrixError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"errcode": code, "error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
