module minisites

go 1.22
