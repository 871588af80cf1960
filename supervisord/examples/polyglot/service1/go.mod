module podvisor.example/service1

go 1.19
