package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"
)

// lkJWT stands in for element-hq/lk-jwt-service (MSC4195): a client posts a Matrix OpenID token
// (from POST /_matrix/client/v3/user/{userId}/openid/request_token) and gets a LiveKit access token
// for the call's LiveKit room plus the SFU's URL.
//
//	GET  /healthz     200
//	POST /sfu/get     {"room", "openid_token", "device_id"}                       (legacy)
//	POST /get_token   {"room_id", "slot_id", "openid_token", "member": {...}}      (MSC4195)
//	→ 200 {"url": LIVEKIT_URL, "jwt": "<LiveKit access token>"}; a token the homeserver does not
//	  accept → 401 {"errcode": "M_UNAUTHORIZED", ...}; a malformed body → 400 M_BAD_JSON.
//
// Simplifications: the OpenID token is checked at the one homeserver base URL it was given
// (-homeserver: the edge's public URL), where real lk-jwt-service finds the homeserver of
// openid_token.matrix_server_name as federation does (well-known, SRV, port 8448). It neither
// creates the LiveKit room through the SFU's API (LiveKit's auto_create does) nor manages delegated
// delayed leave events; the participant identity is "<user id>:<device id>".
type lkJWT struct {
	homeserver string
	livekitURL string
	key        string
	secret     string
	client     *http.Client
	stats      *stats
}

func newLKJWT(homeserver, livekitURL, key, secret string) *lkJWT {
	return &lkJWT{
		homeserver: strings.TrimSuffix(homeserver, "/"),
		livekitURL: livekitURL,
		key:        key,
		secret:     secret,
		client:     &http.Client{Timeout: 10 * time.Second},
		stats:      newStats(),
	}
}

type openIDToken struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	MatrixServerName string `json:"matrix_server_name"`
	ExpiresIn        int    `json:"expires_in"`
}

type tokenRequest struct {
	// legacy /sfu/get
	Room     string `json:"room"`
	DeviceID string `json:"device_id"`
	// /get_token
	RoomID string `json:"room_id"`
	SlotID string `json:"slot_id"`
	Member struct {
		ID              string `json:"id"`
		ClaimedUserID   string `json:"claimed_user_id"`
		ClaimedDeviceID string `json:"claimed_device_id"`
	} `json:"member"`

	OpenIDToken openIDToken `json:"openid_token"`
}

func (s *lkJWT) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_standin/stats" {
		s.stats.serve(w)
		return
	}
	s.stats.count(r)
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization")
	switch r.URL.Path {
	case "/healthz":
		w.WriteHeader(http.StatusOK)
		return
	case "/sfu/get", "/get_token":
	default:
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodPost:
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var req tokenRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		matrixError(w, http.StatusBadRequest, "M_BAD_JSON", "The request body was malformed")
		return
	}
	legacy := r.URL.Path == "/sfu/get"
	room, slot, device, claimed := req.Room, "m.call#ROOM", req.DeviceID, ""
	if !legacy {
		room, slot, device, claimed = req.RoomID, req.SlotID, req.Member.ClaimedDeviceID, req.Member.ClaimedUserID
	}
	if room == "" || slot == "" || device == "" || req.OpenIDToken.AccessToken == "" || req.OpenIDToken.MatrixServerName == "" {
		matrixError(w, http.StatusBadRequest, "M_BAD_JSON", "The request body is missing a room, slot, device or OpenID token")
		return
	}
	sub, ok := s.userInfo(r, req.OpenIDToken)
	if !ok || (claimed != "" && claimed != sub) {
		matrixError(w, http.StatusUnauthorized, "M_UNAUTHORIZED", "The request could not be authorised.")
		return
	}
	jwt, err := s.joinToken(roomAlias(room, slot), sub+":"+device)
	if err != nil {
		matrixError(w, http.StatusInternalServerError, "M_UNKNOWN", "Internal Server Error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"url": s.livekitURL, "jwt": jwt})
}

// userInfo checks the OpenID token with the homeserver's federation userinfo endpoint and returns
// the user it belongs to, which must be a user of matrix_server_name.
func (s *lkJWT) userInfo(r *http.Request, t openIDToken) (string, bool) {
	u := s.homeserver + "/_matrix/federation/v1/openid/userinfo?access_token=" + url.QueryEscape(t.AccessToken)
	hr, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
	if err != nil {
		return "", false
	}
	res, err := s.client.Do(hr)
	if err != nil {
		return "", false
	}
	defer res.Body.Close()
	var info struct {
		Sub string `json:"sub"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&info) != nil {
		return "", false
	}
	if !strings.HasPrefix(info.Sub, "@") || !strings.HasSuffix(info.Sub, ":"+t.MatrixServerName) {
		return "", false
	}
	return info.Sub, true
}

// joinToken mints a LiveKit access token that may join room (publish and subscribe) for an hour.
func (s *lkJWT) joinToken(room, identity string) (string, error) {
	yes := true
	at := auth.NewAccessToken(s.key, s.secret)
	at.SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room, CanPublish: &yes, CanSubscribe: &yes, CanPublishData: &yes}).
		SetIdentity(identity).
		SetValidFor(time.Hour)
	return at.ToJWT()
}

// roomAlias names the LiveKit room of a Matrix room's call slot: a hash, so the SFU never learns the
// Matrix room id (lk-jwt-service does the same).
func roomAlias(room, slot string) string {
	sum := sha256.Sum256([]byte(room + "|" + slot))
	return base64.RawStdEncoding.EncodeToString(sum[:])
}
