module benchapp

go 1.26
