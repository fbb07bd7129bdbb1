package bridges

import "testing"

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"chat.r1", "chat.r1", true},
		{"chat.r1", "chat.r2", false},
		{"chat.*", "chat.r1", true},
		{"chat.*", "chat", false},
		{"chat.*", "chat.r1.x", false},
		{"chat.>", "chat.r1", true},
		{"chat.>", "chat.r1.x.y", true},
		{"chat.>", "chat", false},
		{">", "anything.at.all", true},
		{"*", "one", true},
		{"*", "one.two", false},
		{"*.notifications", "users.notifications", true},
		{"users.*.notifications", "users.bob.notifications", true},
		{"users.*.notifications", "users.bob.audit", false},
		{"chat", "chatroom", false},
	}
	for _, tc := range tests {
		if got := MatchTopic(tc.pattern, tc.topic); got != tc.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tc.pattern, tc.topic, got, tc.want)
		}
	}
}
