package tasks

import "context"

// urgentPri is beanstalkd's bound for an urgent job: priority below 1024.
const urgentPri = 1024

// Urgent counts a queue's ready tasks with a priority under 1024 (stats-tube
// current-jobs-urgent).
func (s *Service) Urgent(ctx context.Context, app, name string) (int, error) {
	q, err := s.queue(ctx, app, name)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return q.urgent, nil
}
