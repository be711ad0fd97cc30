module h2cbench

go 1.26
