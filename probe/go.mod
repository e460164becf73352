module netconform/probe

go 1.26
