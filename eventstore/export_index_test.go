package eventstore

// Gets returns how many messages ReadPassesOf fetched through the index.
func (x *PassIndex) Gets() int64 { return x.gets.Load() }
